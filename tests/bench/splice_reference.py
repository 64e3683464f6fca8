#!/usr/bin/env python3
"""A minimal single-threaded epoll splice proxy, the reference tests/bench/proxy.sh measures vipd
against for one bulk stream: what a proxy that does nothing but splice through a 256 KiB pipe
per direction moves on this machine. Not part of vipd; no limits, no timeouts, no health checks.

    splice_reference.py LISTEN_PORT TARGET_PORT   (both on 127.0.0.1)
"""
import fcntl
import os
import select
import socket
import sys

F_SETPIPE_SZ = 1031
PIPE_SIZE = 256 * 1024
FLAGS = os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE


def main():
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", listen_port))
    listener.listen(128)
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    directions = {}  # source fd -> (source, destination, pipe read end, pipe write end)

    def close(source, destination):
        for sock in (source, destination):
            _, _, read_end, write_end = directions.pop(sock.fileno(), (None, None, None, None))
            if read_end is not None:
                os.close(read_end)
                os.close(write_end)
            try:
                poller.unregister(sock.fileno())
            except OSError:
                pass
            sock.close()

    while True:
        for fd, _ in poller.poll():
            if fd == listener.fileno():
                client, _ = listener.accept()
                server = socket.create_connection(("127.0.0.1", target_port))
                for source, destination in ((client, server), (server, client)):
                    source.setblocking(False)
                    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
                    fcntl.fcntl(read_end, F_SETPIPE_SZ, PIPE_SIZE)
                    directions[source.fileno()] = (source, destination, read_end, write_end)
                    poller.register(source.fileno(), select.EPOLLIN)
                continue
            if fd not in directions:
                continue
            source, destination, read_end, write_end = directions[fd]
            try:
                filled = os.splice(source.fileno(), write_end, PIPE_SIZE, flags=FLAGS)
                in_pipe = filled
                while in_pipe > 0:
                    try:
                        in_pipe -= os.splice(read_end, destination.fileno(), in_pipe, flags=FLAGS)
                    except BlockingIOError:
                        select.select([], [destination], [])
            except BlockingIOError:
                continue
            except OSError:
                filled = 0
            if filled == 0:  # end of stream, or an error: both sides go
                close(source, destination)


if __name__ == "__main__":
    main()
