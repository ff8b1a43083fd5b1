# require NAME...: stop with one line naming a setting the operator has not exported.
require() {
  local name
  for name in "$@"; do
    if [ -z "${!name:-}" ]; then
      echo "error: set $name in the environment (see deploy/README.md)" >&2
      exit 2
    fi
  done
}
