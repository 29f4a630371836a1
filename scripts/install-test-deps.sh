#!/usr/bin/env bash
# Installs, when missing, the Debian packages the test suite runs against: real Postfix
# (with smtp-sink), swaks, miltertest, libmilter (for the C baseline of the benchmark),
# maildrop's Maildir++ tools, rbldnsd (private block lists for the DNSBL health tests), and
# slapd, ldap-utils and openssl (a private OpenLDAP server, with TLS, for the LDAP source tests).
# strace, to hold a process right after bind(2) (the unix socket is never born wider than listen_mode).
# redis-server, for the Redis state tests: they start a private redis-server on a free port with a
# temporary directory (test/support/redis.ts); whether Debian's own service runs (on 6379) or not
# does not matter to them, and it is left as the package leaves it.
# Also Sendmail for the Sendmail end-to-end test: Debian's sendmail-bin conflicts with postfix, so
# it is not installed but downloaded and unpacked (with sendmail-cf, built with m4) into
# $FILTERCTL_TEST_CACHE/sendmail (default /var/cache/filterctl-tests), once; its libraries are
# installed as packages.
# Idempotent and non-interactive; needs root for apt-get.
set -euo pipefail

declare -A wanted=(
  [postfix]=/usr/sbin/postfix
  [swaks]=/usr/bin/swaks
  [miltertest]=/usr/bin/miltertest
  [libmilter-dev]=/usr/include/libmilter/mfapi.h
  [maildrop]=/usr/bin/maildirmake
  [gcc]=/usr/bin/gcc
  [slapd]=/usr/sbin/slapd
  [ldap-utils]=/usr/bin/ldapsearch
  [openssl]=/usr/bin/openssl
  [rbldnsd]=/usr/sbin/rbldnsd
  # A private redis-server per test file (rate() and greylist() with `state: redis`).
  [redis-server]=/usr/bin/redis-server
  # A real LSP client for `filterctl lsp` (test/lsp/neovim.test.ts).
  [neovim]=/usr/bin/nvim
  # Renders and finds the man page (test/cli/man.test.ts, test/packaging/npm-pack.test.ts).
  [man-db]=/usr/bin/man
  # Holds filterctl right after bind(2) in the socket-mode test.
  [strace]=/usr/bin/strace
  # For the unpacked Sendmail: m4 builds its .cf; the libraries sendmail-bin depends on.
  [m4]=/usr/bin/m4
  [libdb5.3]=/usr/share/doc/libdb5.3/copyright
  [libldap-2.5-0]=/usr/share/doc/libldap-2.5-0/copyright
  [libnsl2]=/usr/share/doc/libnsl2/copyright
  [libsasl2-2]=/usr/share/doc/libsasl2-2/copyright
  [libssl3]=/usr/share/doc/libssl3/copyright
  [libwrap0]=/usr/share/doc/libwrap0/copyright
)
sendmail_dir="${FILTERCTL_TEST_CACHE:-/var/cache/filterctl-tests}/sendmail"
sendmail_bin="$sendmail_dir/usr/libexec/sendmail/sendmail"

# Downloads sendmail-bin and sendmail-cf and unpacks them into $sendmail_dir (not installed).
unpack_sendmail() {
  local work
  work="$(mktemp -d)"
  # apt-get download fetches as the _apt user when it can write there (else it warns).
  chown _apt "$work" 2>/dev/null || true
  if ! (cd "$work" && apt-get download -qq sendmail-bin sendmail-cf >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$work" && apt-get download -qq sendmail-bin sendmail-cf >/dev/null)
  fi
  rm -rf "$sendmail_dir.new"
  mkdir -p "$sendmail_dir.new"
  for deb in "$work"/sendmail-bin_*.deb "$work"/sendmail-cf_*.deb; do
    dpkg-deb -x "$deb" "$sendmail_dir.new"
  done
  dpkg-deb -f "$work"/sendmail-bin_*.deb Version >"$sendmail_dir.new/VERSION"
  rm -rf "$work" "$sendmail_dir"
  mv "$sendmail_dir.new" "$sendmail_dir"
  echo "unpacked Sendmail $(cat "$sendmail_dir/VERSION") into $sendmail_dir"
}
missing=()
for package in "${!wanted[@]}"; do
  [ -e "${wanted[$package]}" ] || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ] && [ -x "$sendmail_bin" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: need root to apt-get install ${missing[*]:-} and unpack Sendmail" >&2
  exit 1
fi
if [ ${#missing[@]} -eq 0 ]; then
  unpack_sendmail
  exit 0
fi
echo "installing test dependencies: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Postfix's postinst asks how mail is delivered; our tests run private instances, so any answer works.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# slapd's postinst would build a system directory and ask for its admin password; the LDAP tests
# run a private slapd with their own configuration, so skip that (the system one stays unconfigured).
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ -x "$sendmail_bin" ] || unpack_sendmail
