#!/usr/bin/env bash
# Debian packages the helpline and its tests need on a machine of this kind (Debian 12, root).
# Installs only what is missing, so a warm machine pays nothing. Asterisk itself comes from a
# Debian sid chroot (asterisk_config/provision.py), because Debian 12 has no asterisk package.
set -euo pipefail

PACKAGES=(
  debootstrap      # builds the sid chroot that holds Asterisk 22
  sip-tester       # sipp: the citizens and agents of the integration tests and `helpline call`
  espeak-ng        # Hindi and English prompt audio from text
  sox              # resamples prompts to 8 kHz mono, Asterisk's native rate
  procps           # pgrep/ps used by the stack scripts
  baresip-core     # a real headless SIP softphone: the agents' softphone test (docs/agents.md)
  chromium         # headless browser: the wallboard, review, worklist and desk phone page tests
  openssl          # the WSS certificate of the desk phone (asterisk_config/tls.py)
  fonts-lohit-deva # a Devanagari font, so Chromium renders the Hindi pages (not boxes)
  fail2ban         # its shipped asterisk filter and fail2ban-regex: the ban tests (deploy/fail2ban)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "==> apt-get install ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "need root to install: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
