#!/usr/bin/python3
"""Runs a command under the restrictions of a systemd unit that a process can apply to itself:
UMask=, SystemCallFilter= (with SystemCallErrorNumber= and SystemCallArchitectures=native), and
the directives systemd implements as seccomp argument filters: RestrictAddressFamilies=,
MemoryDenyWriteExecute=, RestrictNamespaces=, RestrictRealtime=, RestrictSUIDSGID= and
LockPersonality=; all read from the unit file, the system call groups expanded by
`systemd-analyze syscall-filter` as systemd expands them. The seccomp filter is loaded with
libseccomp (Debian's python3-seccomp), then the command is exec'd.

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
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME (linux/sched.h).
CLONE_NEW_ANY = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 \
    | 0x40000000 | 0x00000080
SCHED_RESET_ON_FORK = 0x40000000
O_CREAT = 0o100
O_TMPFILE_ONLY = 0o20000000  # O_TMPFILE without O_DIRECTORY


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


def masked(argument, mask, value=0):
    return seccomp.Arg(argument, seccomp.MASKED_EQ, mask, value)


def argument_restrictions(values):
    """The directives systemd implements as seccomp argument filters, as systemd builds them:
    call -> the argument conditions under which it is allowed (any of them; none: never), and
    the calls refused with an errno of their own (glibc falls back to an older call on ENOSYS)."""
    allowed_when, refused_with = {}, {}
    if values.get("MemoryDenyWriteExecute") == "yes":
        # No mapping both writable and executable, no making memory executable afterwards.
        allowed_when["mmap"] = [[masked(2, PROT_WRITE | PROT_EXEC, protection)]
                                for protection in (0, PROT_WRITE, PROT_EXEC)]
        allowed_when["mprotect"] = [[masked(2, PROT_EXEC)]]
        allowed_when["pkey_mprotect"] = [[masked(2, PROT_EXEC)]]
        allowed_when["shmat"] = [[masked(2, SHM_EXEC)]]
    if values.get("RestrictNamespaces") == "yes":
        allowed_when["unshare"] = [[masked(0, CLONE_NEW_ANY)]]
        allowed_when["clone"] = [[masked(0, CLONE_NEW_ANY)]]
        allowed_when["setns"] = []
        refused_with["clone3"] = errno.ENOSYS
    if values.get("RestrictRealtime") == "yes":
        # SCHED_OTHER, SCHED_BATCH and SCHED_IDLE, with or without SCHED_RESET_ON_FORK.
        allowed_when["sched_setscheduler"] = [[masked(1, 0xFFFFFFFF & ~SCHED_RESET_ON_FORK, policy)]
                                              for policy in (0, 3, 5)]
    if values.get("RestrictSUIDSGID") == "yes":
        no_suid = 0o6000
        creating = O_CREAT | O_TMPFILE_ONLY
        allowed_when["chmod"] = [[masked(1, no_suid)]]
        allowed_when["fchmod"] = [[masked(1, no_suid)]]
        allowed_when["fchmodat"] = [[masked(2, no_suid)]]
        allowed_when["fchmodat2"] = [[masked(2, no_suid)]]
        allowed_when["creat"] = [[masked(1, no_suid)]]
        allowed_when["open"] = [[masked(1, creating)], [masked(2, no_suid)]]
        allowed_when["openat"] = [[masked(2, creating)], [masked(3, no_suid)]]
        refused_with["openat2"] = errno.ENOSYS
    if values.get("LockPersonality") == "yes":
        # The personality vipd starts with (PER_LINUX), or a query.
        allowed_when["personality"] = [[seccomp.Arg(0, seccomp.EQ, 0)],
                                       [seccomp.Arg(0, seccomp.EQ, 0xFFFFFFFF)]]
    families = values.get("RestrictAddressFamilies", "").split()
    if families:
        # socket() for the listed families only, EAFNOSUPPORT (below) otherwise.
        allowed_when["socket"] = [[seccomp.Arg(0, seccomp.EQ, FAMILIES[family])]
                                  for family in families]
    return allowed_when, refused_with


def build_filter(settings, groups, action, without):
    values = dict(settings)
    error_number = getattr(errno, values.get("SystemCallErrorNumber", "EPERM"))
    refuse = {
        "errno": seccomp.ERRNO(error_number),
        "log": seccomp.LOG,
        "kill": seccomp.KILL_PROCESS,
    }[action]
    calls = {call for call in allowed_calls(settings, groups) - set(without) if resolvable(call)}
    allowed_when, refused_with = argument_restrictions(values)
    seccomp_filter = seccomp.SyscallFilter(defaction=refuse)
    for call in sorted(calls - set(allowed_when) - set(refused_with)):
        seccomp_filter.add_rule(seccomp.ALLOW, call)
    for call, conditions in allowed_when.items():
        if call in calls:
            for arguments in conditions:
                seccomp_filter.add_rule(seccomp.ALLOW, call, *arguments)
    # What systemd answers with an errno of its own in every mode: these are the sandbox's
    # behaviour, not calls missing from the set.
    for call, error in refused_with.items():
        if call in calls:
            seccomp_filter.add_rule(seccomp.ERRNO(error), call)
    if "socket" in allowed_when and "socket" in calls:
        wanted = {FAMILIES[family] for family in values["RestrictAddressFamilies"].split()}
        for family in set(range(AF_MAX)) - wanted:
            seccomp_filter.add_rule(
                seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, family)
            )
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
