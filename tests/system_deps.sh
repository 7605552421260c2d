#!/usr/bin/env bash
# Install the Debian packages the test suite drives for real, when they are missing:
# chromium (the real-browser test) and promtool (from `prometheus`, checks the shipped alert rules).
# `make setup` runs this; it is idempotent and says what to run when it cannot install.
set -uo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: the tests need ${need[*]} (Debian packages), and this machine has no apt-get." >&2
  echo "hint: install chromium and promtool with your system's package manager, then re-run: make setup" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; else
    echo "error: the tests need ${need[*]}, and installing them needs root." >&2
    echo "hint: run: sudo apt-get update && sudo apt-get install -y ${need[*]}   then re-run: make setup" >&2
    exit 1
  fi
fi
echo "setup: installing Debian packages ${need[*]} for the tests (apt-get)…"
export DEBIAN_FRONTEND=noninteractive
# prometheus' postinst would start a server: policy-rc.d 101 forbids service starts during the install.
policy=/usr/sbin/policy-rc.d; made_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy" && made_policy=1; fi
ok=1
$SUDO apt-get update -qq >/dev/null 2>&1 || ok=0
[ $ok = 1 ] && { $SUDO apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || ok=0; }
[ $made_policy = 1 ] && $SUDO rm -f "$policy"
if [ $ok = 0 ]; then
  echo "error: apt-get could not install ${need[*]}. Check your network access to Debian's package archive," >&2
  echo "hint: or run: apt-get update && apt-get install -y ${need[*]}   then re-run: make setup" >&2
  exit 1
fi
# the prometheus package ships a server too (run as its own `prometheus` user); the tests only need promtool, so
# stop that server if the install started one — and only that one, never a Prometheus of the machine's owner.
case " ${need[*]} " in *" prometheus "*) pkill -u prometheus -x prometheus >/dev/null 2>&1 || true ;; esac
exit 0
