#!/usr/bin/env bash
# The shell completions of berthctl: every subcommand berthctl has is offered (and no other),
# the bash function completes commands, flags and values, and the zsh file parses and lists the
# same commands. Usage: completion_test.sh BERTHCTL SOURCE_DIR
set -euo pipefail
berthctl=$1
dir=$2/contrib/completion

# The subcommands berthctl itself lists in --help.
want=$("$berthctl" --help | awk '/^Subcommands:/{on=1; next} on && /^  [a-z]/{sub(/,$/, "", $1); print $1}' | sort)
[[ -n $want ]] || { echo "no subcommands in berthctl --help"; exit 1; }

source "$dir/berthctl.bash"
complete_words() {  # complete_words WORD... (the last one is being completed)
  COMP_WORDS=(berthctl "$@")
  COMP_CWORD=$#
  COMPREPLY=()
  _berthctl
  printf '%s\n' "${COMPREPLY[@]}" | sort
}
got=$(complete_words "" | grep -v '^-')
if [[ $got != "$want" ]]; then
  echo "bash completion commands differ from berthctl --help:"
  diff <(echo "$want") <(echo "$got") || true
  exit 1
fi
[[ $(complete_words -o y) == yaml ]] || { echo "-o y does not complete to yaml"; exit 1; }
[[ $(complete_words ps --no) == --no-trunc ]] || { echo "ps --no does not complete to --no-trunc"; exit 1; }
[[ $(complete_words ps --state r) == running ]] || { echo "ps --state r: $(complete_words ps --state r)"; exit 1; }
[[ $(complete_words pods --state n) == notready ]] || { echo "pods --state n"; exit 1; }
[[ $(complete_words logs --t) == $'--tail\n--timestamps' ]] || { echo "logs --t: $(complete_words logs --t)"; exit 1; }

if command -v zsh > /dev/null; then
  zsh -n "$dir/_berthctl"
  zgot=$(sed -n "s/^    '\([a-z-]*\):.*/\1/p" "$dir/_berthctl" | sort)
  if [[ $zgot != "$want" ]]; then
    echo "zsh completion commands differ from berthctl --help:"
    diff <(echo "$want") <(echo "$zgot") || true
    exit 1
  fi
else
  echo "zsh is not installed: the zsh file was not checked"
  exit 77
fi
echo "completions ok"
