# Sourced by scripts/torch2-env.sh and scripts/ipex-env.sh: what creating a cached venv
# outside the clone needs in both.

# venv_lock VENV: hold "$VENV.lock" (fd 9) until the script exits, so that one process at a
# time creates or changes VENV (several checkouts on one machine share it).
venv_lock() {
  mkdir -p "$(dirname "$1")"
  exec 9>"$1.lock"
  flock 9
}

# venv_need_free_gb DIR GB WHO WHAT VAR: exit 1 with a message naming WHO, WHAT and the
# environment variable VAR that moves the venv, unless DIR's file system has GB GiB free.
venv_need_free_gb() {
  local free_kb need_kb
  free_kb="$(df -Pk "$1" | awk 'NR == 2 {print $4}')"
  need_kb=$(($2 * 1024 * 1024))
  if [ "$free_kb" -lt "$need_kb" ]; then
    echo "$3: need $2 GB free in $1 for $4, have $((free_kb / 1024 / 1024)) GB;" \
         "free space or set $5 elsewhere" >&2
    exit 1
  fi
}
