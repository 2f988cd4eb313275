#!/usr/bin/env bash
# Installs the Debian packages maia needs when they are missing:
#   audio: fluidsynth (libfluidsynth3) and the fluid-soundfont-gm piano
#   browser: chromium's headless shell, for the end-to-end tests (Playwright drives it; no browser is downloaded);
#            where the whole chromium is installed already, the tests run that instead (bench/webmidi.py)
# Usage: scripts/sysdeps.sh audio|browser ...   When apt-get cannot run, prints the command to run.
set -u
want=()
for what in "$@"; do
  case "$what" in
    audio)
      ldconfig -p 2>/dev/null | grep -q libfluidsynth || want+=(fluidsynth libfluidsynth3)
      [ -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || want+=(fluid-soundfont-gm) ;;
    browser)
      [ -x /usr/lib/chromium/chromium-headless-shell ] || [ -x /usr/bin/chromium ] || want+=(chromium-headless-shell) ;;
  esac
done
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo"
else
  echo "maia: missing system packages; please run:  sudo apt-get install -y ${want[*]}" >&2
  exit 0
fi
echo "installing ${want[*]} with apt-get"
$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null \
  || echo "maia: apt-get failed; please run:  sudo apt-get install -y ${want[*]}" >&2
