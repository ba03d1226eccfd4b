#!/usr/bin/env bash
# Install what sitemail needs on a fresh Debian machine (idempotent).
#   bash scripts/install.sh          the sitemail package and its Python dependencies
#   bash scripts/install.sh test     also the real parts the tests drive (swaks, Postfix,
#                                    OpenLDAP, nginx, Chromium, ...) and the test tools
# Prints the Python interpreter to use on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-runtime}"

need_python() {
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 &&
       "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"; return
    fi
  done
  echo "sitemail needs Python >= 3.11; install it (apt-get install python3) and retry" >&2
  exit 1
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing Debian packages: ${missing[*]}" >&2
  as_root apt-get update -qq >&2
  printf '%s\n' \
    'postfix postfix/main_mailer_type select Local only' \
    'postfix postfix/mailname string sitemail.test' \
    'slapd slapd/no_configuration boolean true' | as_root debconf-set-selections
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
}

py="$(need_python)"
if ! "$py" -m pip --version >/dev/null 2>&1 || ! "$py" -m venv --help >/dev/null 2>&1; then
  command -v apt-get >/dev/null && apt_install python3-pip python3-venv
fi

extra=""
[ "$what" = test ] && extra="[test]"
# Use the interpreter's own site-packages where pip may write there; otherwise a .venv.
pip_install() { "$1" -m pip install -q --disable-pip-version-check -e ".${extra}" >&2; }
if [ -x .venv/bin/python ]; then
  py=.venv/bin/python
  pip_install "$py"
elif ! pip_install "$py" 2>/dev/null; then
  # Debian's own Python refuses system-wide pip installs (PEP 668): use a venv.
  "$py" -m venv .venv >&2
  py=.venv/bin/python
  pip_install "$py"
fi

if [ "$what" = test ]; then
  if command -v apt-get >/dev/null; then
    apt_install swaks postfix slapd ldap-utils nginx libnginx-mod-mail chromium socat curl \
      netcat-openbsd telnet tmux libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl wrk \
      strace tcpdump iproute2 openssh-client sshpass php-cli php-curl php-mbstring php-horde-activesync \
      fetchmail isync msmtp mutt davmail-server
  fi
fi
echo "$py"
