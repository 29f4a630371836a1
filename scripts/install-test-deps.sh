#!/usr/bin/env bash
# Installs, when missing, the Debian packages the test suite runs against: real Postfix
# (with smtp-sink), swaks, miltertest, libmilter (for the C baseline of the benchmark),
# maildrop's Maildir++ tools, rbldnsd (private block lists for the DNSBL health tests), and
# slapd, ldap-utils and openssl (a private OpenLDAP server, with TLS, for the LDAP source tests).
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
)
missing=()
for package in "${!wanted[@]}"; do
  [ -e "${wanted[$package]}" ] || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing test dependencies: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: need root to apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix's postinst asks how mail is delivered; our tests run private instances, so any answer works.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# slapd's postinst would build a system directory and ask for its admin password; the LDAP tests
# run a private slapd with their own configuration, so skip that (the system one stays unconfigured).
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
