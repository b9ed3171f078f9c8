# bash completion for berthctl. Install as /usr/share/bash-completion/completions/berthctl
# (or source it from ~/.bashrc).
_berthctl() {
  local cur prev words cword
  if declare -F _init_completion > /dev/null; then
    _init_completion || return
  else
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    words=("${COMP_WORDS[@]}")
    cword=$COMP_CWORD
  fi
  local commands="attach check config create exec features imagefsinfo images info inspect inspecti inspectp log-level logs mounts plugin-info plugins pods port-forward ps pull rm rmi rmp run runp start stats stop stopp version warnings"
  local globals="-a --address -r --runtime-endpoint -o --output --timeout -h --help"

  case $prev in
    -o|--output) COMPREPLY=($(compgen -W "table json yaml" -- "$cur")); return ;;
    --transport) COMPREPLY=($(compgen -W "spdy websocket" -- "$cur")); return ;;
    --tls-ca) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    -a|--address|-r|--runtime-endpoint) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    -s|--state)
      local i
      for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
          ps) COMPREPLY=($(compgen -W "created running exited unknown" -- "$cur")); return ;;
          pods) COMPREPLY=($(compgen -W "ready notready" -- "$cur")); return ;;
        esac
      done ;;
  esac

  local cmd="" i
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      -o|--output|-a|--address|-r|--runtime-endpoint|--timeout) ((i++)) ;;
      -*) ;;
      *) cmd=${words[i]}; break ;;
    esac
  done
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "$commands $globals" -- "$cur"))
    return
  fi
  local flags=""
  case $cmd in
    ps) flags="-a --all -p --pod -q --quiet --no-trunc -l --label -s --state --name" ;;
    pods) flags="-q --quiet --no-trunc -l --label -s --state --name -r --runtime" ;;
    images) flags="-q --quiet --no-trunc --name -o --output import" ;;
    logs) flags="-f --follow --tail --since -t --timestamps" ;;
    exec) flags="-i --interactive -t --tty -s --sync --timeout --transport --tls-ca" ;;
    attach) flags="-i --interactive -t --tty --transport --tls-ca" ;;
    port-forward) flags="--address --transport --tls-ca" ;;
    run) flags="--name" ;;
    config) flags="dump" ;;
    log-level) flags="trace debug info warn error" ;;
    mounts) flags="audit" ;;
    stats) flags="-a --all" ;;
  esac
  COMPREPLY=($(compgen -W "$flags -h --help" -- "$cur"))
}
complete -F _berthctl berthctl
