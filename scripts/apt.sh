# apt.sh — sourced by the set-up scripts: install Debian packages as root
# (sudo when not root), running `apt-get update` once per script. Output
# goes to stderr, which keeps stdout for what the scripts print.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
apt_update() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq >&2; apt_updated=1; fi
}
apt_install() {
  apt_update
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >&2
}
