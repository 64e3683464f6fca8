#!/usr/bin/python3
"""Runs a command under the restrictions of a systemd unit that a process can apply to itself:
UMask=, SystemCallFilter= (with SystemCallErrorNumber= and SystemCallArchitectures=native),
RestrictAddressFamilies= and MemoryDenyWriteExecute=, all read from the unit file, the system
call groups expanded by `systemd-analyze syscall-filter` as systemd expands them. The seccomp
filter is loaded with libseccomp (Debian's python3-seccomp), then the command is exec'd.

Run it after `setpriv --no-new-privs` has switched user and capabilities (setpriv's own calls,
setresuid and capset, are in @privileged, which the unit denies).

    unit_sandbox.py [--action errno|log|kill] [--without CALL]... UNIT -- COMMAND...

--action log lets every call through and logs the ones the filter would refuse to the kernel log
(audit): how to find a call missing from the set. --without removes a call from the set, to show
that the test notices.
"""

import errno
import os
import subprocess
import sys

import seccomp

PROT_WRITE = 0x2
PROT_EXEC = 0x4
SHM_EXEC = 0o100000
# Address family numbers (linux/socket.h); socket() is allowed for the unit's families only.
FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17}
AF_MAX = 64


def service_settings(path):
    """The [Service] section's assignments, in order (a key may repeat)."""
    settings = []
    section = None
    with open(path) as unit:
        for line in unit:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                key, value = line.split("=", 1)
                settings.append((key.strip(), value.strip()))
    return settings


def syscall_groups():
    """Every group of `systemd-analyze syscall-filter`: name -> members (calls and groups)."""
    text = subprocess.run(
        ["systemd-analyze", "syscall-filter"], check=True, capture_output=True, text=True
    ).stdout
    groups, current = {}, None
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(name, groups):
    if not name.startswith("@"):
        return {name}
    calls = set()
    for member in groups[name]:
        calls |= expand(member, groups)
    return calls


def allowed_calls(settings, groups):
    """What systemd allows: the first SystemCallFilter= without ~ starts an allow list (with
    @default, which systemd always adds to one), later lines add to it or, with ~, take away."""
    allowed = None
    for key, value in settings:
        if key != "SystemCallFilter":
            continue
        deny = value.startswith("~")
        names = value.lstrip("~").split()
        calls = set().union(*(expand(name, groups) for name in names))
        if allowed is None:
            if deny:
                sys.exit("unit_sandbox.py: a deny-list filter is not what vipd's unit has")
            allowed = expand("@default", groups)
        allowed = allowed - calls if deny else allowed | calls
    if allowed is None:
        sys.exit("unit_sandbox.py: the unit has no SystemCallFilter=")
    return allowed


def resolvable(call):
    """Whether `call` exists on this architecture (libseccomp numbers the others negative)."""
    try:
        return seccomp.resolve_syscall(seccomp.Arch.NATIVE, call) >= 0
    except (ValueError, RuntimeError):
        return False


def build_filter(settings, groups, action, without):
    values = dict(settings)
    error_number = getattr(errno, values.get("SystemCallErrorNumber", "EPERM"))
    refuse = {
        "errno": seccomp.ERRNO(error_number),
        "log": seccomp.LOG,
        "kill": seccomp.KILL_PROCESS,
    }[action]
    calls = allowed_calls(settings, groups) - set(without)
    restricted = set()
    if values.get("MemoryDenyWriteExecute") == "yes":
        restricted |= {"mmap", "mprotect", "pkey_mprotect", "shmat"}
    families = values.get("RestrictAddressFamilies", "").split()
    if families:
        restricted.add("socket")
    seccomp_filter = seccomp.SyscallFilter(defaction=refuse)
    for call in sorted(calls - restricted):
        if resolvable(call):
            seccomp_filter.add_rule(seccomp.ALLOW, call)
    allow = seccomp.ALLOW
    # MemoryDenyWriteExecute=, as systemd builds it: no mapping both writable and executable, no
    # making memory executable afterwards.
    for call in ("mmap", "mprotect", "pkey_mprotect", "shmat"):
        if call not in calls or call not in restricted or not resolvable(call):
            continue
        if call == "mmap":
            for protection in (0, PROT_WRITE, PROT_EXEC):
                seccomp_filter.add_rule(
                    allow, call, seccomp.Arg(2, seccomp.MASKED_EQ, PROT_WRITE | PROT_EXEC, protection)
                )
        elif call == "shmat":
            seccomp_filter.add_rule(allow, call, seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, 0))
        else:
            seccomp_filter.add_rule(allow, call, seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, 0))
    # RestrictAddressFamilies=: socket() for the listed families only, EAFNOSUPPORT otherwise.
    if families and "socket" in calls:
        wanted = {FAMILIES[family] for family in families}
        for family in range(AF_MAX):
            rule = allow if family in wanted else seccomp.ERRNO(errno.EAFNOSUPPORT)
            seccomp_filter.add_rule(rule, "socket", seccomp.Arg(0, seccomp.EQ, family))
    return seccomp_filter


def main(arguments):
    action, without = "errno", []
    while arguments and arguments[0].startswith("--") and arguments[0] != "--":
        option = arguments.pop(0)
        if option == "--action":
            action = arguments.pop(0)
        elif option == "--without":
            without.append(arguments.pop(0))
        else:
            sys.exit(f"unit_sandbox.py: unknown option {option}")
    if len(arguments) < 3 or arguments[1] != "--":
        sys.exit(__doc__)
    unit, command = arguments[0], arguments[2:]
    settings = service_settings(unit)
    umask = dict(settings).get("UMask")
    if umask is not None:
        os.umask(int(umask, 8))
    seccomp_filter = build_filter(settings, syscall_groups(), action, without)
    seccomp_filter.load()
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
