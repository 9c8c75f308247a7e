# shellcheck shell=bash
# lib.sh — shell helpers that scripts/bench-cloud.sh and scripts/profile.sh source (device-check.sh
# runs alone from the device bundle and keeps its own).

# have CMD: whether CMD is on PATH.
have() { command -v "$1" >/dev/null 2>&1; }

# q ARGS...: ARGS as a shell would need them typed, quoted only where needed.
q() {
	local a sep=""
	for a in "$@"; do
		if [[ "$a" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then
			printf '%s%s' "$sep" "$a"
		else
			printf "%s'%s'" "$sep" "${a//\'/\'\\\'\'}"
		fi
		sep=" "
	done
}
