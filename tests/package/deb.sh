#!/usr/bin/env bash
# vipd's Debian package on this machine, as root: built once (deploy/debian/build-deb: a release
# build, several minutes), checked by lintian, installed, upgraded to a higher version built from
# the same binary, removed and installed again, and purged, with what each step must leave
# behind checked on the way. Any
# failed check fails the script, with what was expected.
#
# Nothing starts: the package's scripts never start vipd, and a policy-rc.d that refuses every
# start (exit 101) guards the install, as tests/run guards its apt-get installs. vipd runs here as
# `vipd --version` and `vipd check`, and `vipd run` once in a network namespace of its own that
# has only a loopback: never on the host's interfaces. On every exit, a
# failure included, the machine is put back: the package purged, and the vipd user removed when
# this script's install created it (the package itself leaves the user, as Debian does).
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() {
    echo "tests/package/deb.sh: FAILED: $*" >&2
    exit 1
}
# check WHAT COMMAND...: runs COMMAND, fails with WHAT when it fails.
check() {
    local what=$1
    shift
    "$@" || fail "$what"
    echo "  ok: $what"
}
owner_and_mode() { stat -c '%U:%G %a' "$1"; }
is() { [ "$1" = "$2" ] || { echo "    expected '$2', got '$1'" >&2; return 1; }; }
# The package's user has this GECOS (sysusers.d; adduser appends ",,,").
made_by_package() { case $(getent passwd vipd | cut -d: -f5) in "vipd daemon"*) ;; *) return 1 ;; esac; }
quietly() { "$@" >/dev/null; }
# In any state: installed, or unpacked, half-configured... after a failed step.
dpkg_knows_vipd() { dpkg-query -W -f='${db:Status-Status}' vipd 2>/dev/null | grep -qv not-installed; }
installed_version() { dpkg-query -W -f='${Status} ${Version}' vipd 2>/dev/null || true; }

[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
! dpkg_knows_vipd ||
    fail "dpkg knows a vipd package already ($(installed_version)); this test would purge it"
[ ! -e /etc/vipd ] || fail "/etc/vipd exists; this test would remove it with the package"

work=$(mktemp -d)
user_existed=0
getent passwd vipd >/dev/null && user_existed=1
policy=/usr/sbin/policy-rc.d created_policy=0
restore_machine() {
    local status=$?
    if dpkg_knows_vipd; then
        echo "tests/package/deb.sh: purging the vipd package"
        dpkg --purge vipd </dev/null >/dev/null || status=1
    fi
    # Only the user the package made (its GECOS): another test may have made its own meanwhile.
    if [ $user_existed -eq 0 ] && made_by_package; then
        userdel vipd || status=1
        if getent group vipd >/dev/null; then groupdel vipd || status=1; fi
    fi
    [ $created_policy -eq 0 ] || rm -f "$policy"
    rm -rf "$work"
    exit $status
}
trap restore_machine EXIT
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi

echo "== build (release binary, man pages, completions, .deb)"
cargo fetch --locked --quiet
# Offline from here: the package builds from the tree and the fetched crates alone.
CARGO_NET_OFFLINE=true deploy/debian/build-deb --output "$work/v1"
deb1=$(echo "$work"/v1/vipd_*.deb)
[ -f "$deb1" ] || fail "build-deb made no .deb in $work/v1"
v1=$(dpkg-deb -f "$deb1" Version)
v2=$v1+upgrade1
dpkg --compare-versions "$v2" gt "$v1" || fail "$v2 is not above $v1"
# The upgrade's package: the same binary, another version; no second build.
CARGO_NET_OFFLINE=true deploy/debian/build-deb --no-build --deb-version "$v2" --output "$work/v2"
deb2=$(echo "$work"/v2/vipd_*.deb)
[ -f "$deb2" ] || fail "build-deb --no-build made no .deb in $work/v2"
check "debug symbols in vipd-dbgsym" \
    sh -c "dpkg-deb -c $work/v1/vipd-dbgsym_*.ddeb | grep -q '/usr/lib/debug/.*\.debug$'"
echo "$(basename "$deb1"): $(stat -c %s "$deb1") bytes, $(dpkg-deb -c "$deb1" | grep -vc '/$') files"
# mode, size, path of every file
dpkg-deb -c "$deb1" | awk '$6 !~ /\/$/ { printf "  %s %9d %s\n", $1, $3, $6 }'

echo "== lintian (errors fail, warnings listed)"
if command -v lintian >/dev/null; then
    lintian --fail-on error --tag-display-limit 0 "$deb1" |
        sed 's/^/  /' || fail "lintian reports errors"
    echo "  ok: lintian: no errors"
else
    fail "lintian is missing (Debian package lintian)"
fi
check "/etc/vipd/vipd.yaml is the package's only conffile" \
    is "$(dpkg-deb --ctrl-tarfile "$deb1" | tar -xO ./conffiles)" /etc/vipd/vipd.yaml

echo "== install $v1"
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb1" </dev/null || fail "dpkg -i $deb1"
check "installed" is "$(installed_version)" "install ok installed $v1"
check "vipd --version: $(/usr/bin/vipd --version)" /usr/bin/vipd --version
check "vipd stripped" sh -c '! readelf -S /usr/bin/vipd | grep -q "debug_line"'
check "without vipd lab (the package's build has no default features)" \
    sh -c '/usr/bin/vipd lab 2>&1 | grep -q "built without the lab"'
if [ $user_existed -eq 0 ]; then
    check "user vipd made by the package" made_by_package
    check "user vipd: no home, no login" \
        is "$(getent passwd vipd | cut -d: -f6,7)" /nonexistent:/usr/sbin/nologin
else
    check "user vipd (it existed before: kept as it was)" quietly getent passwd vipd
fi
check "group vipd" quietly getent group vipd
check "/run/vipd owned by vipd" is "$(owner_and_mode /run/vipd)" "vipd:vipd 755"
check "/var/lib/vipd owned by vipd" is "$(owner_and_mode /var/lib/vipd)" "vipd:vipd 755"
check "token: root:vipd 0640" is "$(owner_and_mode /etc/vipd/token)" "root:vipd 640"
check "token: 64 hex digits" grep -qxE '[0-9a-f]{64}' /etc/vipd/token
check "example config: vipd check (root)" /usr/bin/vipd check -c /etc/vipd/vipd.yaml
# The unit's ExecStartPre runs the same check as the vipd user: it must read the token too.
check "example config: vipd check (as vipd, as the unit runs it)" \
    setpriv --reuid vipd --regid vipd --init-groups /usr/bin/vipd check -c /etc/vipd/vipd.yaml
verify=$(systemd-analyze verify /usr/lib/systemd/system/vipd.service 2>&1) || true
check "systemd-analyze verify: no complaint" is "$verify" ""
check "unit enabled (multi-user.target.wants)" \
    test -L /etc/systemd/system/multi-user.target.wants/vipd.service
check "vipd not started" test -z "$(pidof /usr/bin/vipd || true)"
check "man page vipd(8)" is "$(man -w 8 vipd)" /usr/share/man/man8/vipd.8.gz
# shellcheck disable=SC2016 # expanded by the inner shell
check "man pages render" sh -c 'for page in /usr/share/man/man8/vipd*.8.gz; do
    man -l "$page" >/dev/null 2>&1 || exit 1; done'
check "bash completion registers" \
    bash -c '. /usr/share/bash-completion/completions/vipd && complete -p vipd >/dev/null'
check "zsh completion" grep -q '^#compdef vipd' /usr/share/zsh/vendor-completions/_vipd
check "fish completion" grep -q 'complete -c vipd' /usr/share/fish/vendor_completions.d/vipd.fish
check "docs and examples" test -f /usr/share/doc/vipd/configuration.md \
    -a -f /usr/share/doc/vipd/changelog.gz -a -f /usr/share/doc/vipd/examples/active-standby-lb1.yaml

echo "== the shipped config runs: vipd as the vipd user, alone in a network namespace"
# What the unit would start on a boot before the node is configured; the namespace has only its
# own loopback, so nothing reaches the host's interfaces. curl goes through the proxy.
# shellcheck disable=SC2016 # expanded by the inner shell
unshare --net sh -c '
    ip link set lo up
    setpriv --reuid vipd --regid vipd --init-groups \
        /usr/bin/vipd run -c /etc/vipd/vipd.yaml >"$1" 2>&1 &
    daemon=$!
    for _ in $(seq 50); do
        curl -sf -m 2 http://127.0.0.1:9651/status >"$2" && break
        sleep 0.2
    done
    kill -TERM $daemon
    wait $daemon
' sh "$work/run.log" "$work/status.json" || { cat "$work/run.log" >&2; fail "vipd run with the shipped config"; }
check "/status through the loopback frontend" grep -q '"name":"loopback-check"' "$work/status.json"

echo "== the operator edits the config"
sed -i 's/127.0.0.1:9651/127.0.0.1:9652/' /etc/vipd/vipd.yaml
echo "# edited by tests/package/deb.sh" >>/etc/vipd/vipd.yaml
config_sum=$(sha256sum </etc/vipd/vipd.yaml)
token_sum=$(sha256sum </etc/vipd/token)

echo "== upgrade to $v2 (stdin closed: a conffile question would fail it)"
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb2" </dev/null || fail "dpkg -i $deb2"
check "upgraded" is "$(installed_version)" "install ok installed $v2"
check "the edited config is kept" is "$(sha256sum </etc/vipd/vipd.yaml)" "$config_sum"
check "no .dpkg-dist / .dpkg-new beside it" \
    test -z "$(find /etc/vipd -name '*.dpkg-*')"
check "the token is kept" is "$(sha256sum </etc/vipd/token)" "$token_sum"
check "token still root:vipd 0640" is "$(owner_and_mode /etc/vipd/token)" "root:vipd 640"
check "edited config: vipd check" /usr/bin/vipd check -c /etc/vipd/vipd.yaml
check "unit still enabled" test -L /etc/systemd/system/multi-user.target.wants/vipd.service

echo "== remove (not purge): the program goes, the configuration stays"
dpkg -r vipd </dev/null || fail "dpkg -r vipd"
check "removed, its configuration kept" is "$(installed_version)" "deinstall ok config-files $v2"
check "/usr/bin/vipd removed" test ! -e /usr/bin/vipd
check "the unit file removed" test ! -e /usr/lib/systemd/system/vipd.service
check "the edited config is kept" is "$(sha256sum </etc/vipd/vipd.yaml)" "$config_sum"
check "the token is kept" is "$(sha256sum </etc/vipd/token)" "$token_sum"
check "user vipd kept" quietly getent passwd vipd
# As dh_installsystemd does: masked by deb-systemd-helper (a link to /dev/null, recorded so that
# the reinstall's unmask removes it), the enablement kept for the reinstall.
check "unit masked by deb-systemd-helper" \
    is "$(readlink /etc/systemd/system/vipd.service)" /dev/null
check "enablement kept" test -L /etc/systemd/system/multi-user.target.wants/vipd.service

echo "== reinstall $v2, the token now an operator's symlink that dangles at install time"
# E.g. a token on a mount that is not there yet: the postinst must leave the link, not replace it.
mv /etc/vipd/token "$work/token.kept"
ln -s "$work/operator-token" /etc/vipd/token
out=$(DEBIAN_FRONTEND=noninteractive dpkg -i "$deb2" </dev/null 2>&1) ||
    { echo "$out" >&2; fail "dpkg -i $deb2 again"; }
printf '%s\n' "$out"
check "installed again" is "$(installed_version)" "install ok installed $v2"
check "unit unmasked" \
    test ! -e /etc/systemd/system/vipd.service -a ! -L /etc/systemd/system/vipd.service
check "unit enabled again" \
    test -e /etc/systemd/system/multi-user.target.wants/vipd.service
check "the operator's token symlink kept" is "$(readlink /etc/vipd/token)" "$work/operator-token"
mv "$work/token.kept" "$work/operator-token"
check "the token unchanged (through the link)" is "$(sha256sum </etc/vipd/token)" "$token_sum"
rm /etc/vipd/token && mv "$work/operator-token" /etc/vipd/token
check "the edited config unchanged" is "$(sha256sum </etc/vipd/vipd.yaml)" "$config_sum"
check "the postinst's hint: enabled, not started" grep -q "vipd: enabled, not started" <<<"$out"
verify=$(systemd-analyze verify /usr/lib/systemd/system/vipd.service 2>&1) || true
check "systemd-analyze verify: no complaint" is "$verify" ""

echo "== purge"
# dpkg's copies of other conffile versions, as an upgrade's question leaves them: dpkg removes
# them on purge (the postrm does not), so /etc/vipd must still go.
touch /etc/vipd/vipd.yaml.dpkg-old /etc/vipd/vipd.yaml.dpkg-dist
dpkg --purge vipd </dev/null || fail "dpkg --purge vipd"
check "not installed" test -z "$(dpkg-query -W -f='${Status}' vipd 2>/dev/null | grep ' installed' || true)"
for gone in /etc/vipd /var/lib/vipd /run/vipd /usr/bin/vipd /usr/lib/systemd/system/vipd.service \
    /etc/systemd/system/multi-user.target.wants/vipd.service /etc/systemd/system/vipd.service; do
    check "$gone removed" test ! -e "$gone" -a ! -L "$gone"
done
check "user vipd left (Debian policy)" quietly getent passwd vipd

echo "== install on a system without systemd's tools: adduser and install -d instead"
# A Debian without systemd (a container) has neither systemd-sysusers nor systemd-tmpfiles: a
# PATH of every other program of this machine stands in for it.
without_systemd=$work/without-systemd
mkdir "$without_systemd"
for program in /usr/sbin/* /usr/bin/*; do
    case ${program##*/} in systemd-sysusers | systemd-tmpfiles) continue ;; esac
    ln -sf "$program" "$without_systemd/"
done
if [ $user_existed -eq 0 ] && made_by_package; then
    userdel vipd && { ! getent group vipd >/dev/null || groupdel vipd; }
fi
PATH=$without_systemd DEBIAN_FRONTEND=noninteractive dpkg -i "$deb1" </dev/null ||
    fail "dpkg -i $deb1 without systemd's tools"
if [ $user_existed -eq 0 ]; then
    check "user vipd made by adduser (its GECOS)" is "$(getent passwd vipd | cut -d: -f5)" "vipd daemon,,,"
    check "user vipd: no home, no login" \
        is "$(getent passwd vipd | cut -d: -f6,7)" /nonexistent:/usr/sbin/nologin
fi
check "/run/vipd owned by vipd" is "$(owner_and_mode /run/vipd)" "vipd:vipd 755"
check "/var/lib/vipd owned by vipd" is "$(owner_and_mode /var/lib/vipd)" "vipd:vipd 755"
check "token: root:vipd 0640" is "$(owner_and_mode /etc/vipd/token)" "root:vipd 640"
check "example config: vipd check (as vipd)" \
    setpriv --reuid vipd --regid vipd --init-groups /usr/bin/vipd check -c /etc/vipd/vipd.yaml
dpkg --purge vipd </dev/null || fail "dpkg --purge vipd"
check "/etc/vipd and /var/lib/vipd removed" test ! -e /etc/vipd -a ! -e /var/lib/vipd
echo "tests/package/deb.sh: the package builds, installs, upgrades, reinstalls and purges as it should"
