# bash completion for ctrmonctl(1): global options, commands and each
# command's options (the same tables as client/ctrmonctl/*.c; keep in step).
# Installed into bash-completion's completionsdir, loaded on first use.
# shellcheck disable=SC2207  # COMPREPLY=($(compgen ...)) is the completion idiom

_ctrmonctl_signals()
{
        local s
        for s in HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM \
                TERM CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH \
                IO PWR SYS; do
                printf '%s\n' "$s" "SIG$s"
        done
}

_ctrmonctl()
{
        local cur prev words cword
        if declare -F _init_completion >/dev/null; then
                _init_completion || return
        else
                cur=${COMP_WORDS[COMP_CWORD]}
                prev=${COMP_WORDS[COMP_CWORD - 1]}
                words=("${COMP_WORDS[@]}")
                cword=$COMP_CWORD
        fi

        local commands="status ps wait kill resize exec attach logs stats events version run"
        local global_opts="-b --bundle -S --socket --json -h --help --version"

        # The command is the first word that is neither an option nor the
        # argument of -b/-S.
        local i cmd="" cmd_at=0
        for ((i = 1; i < cword; i++)); do
                case ${words[i]} in
                -b | --bundle | -S | --socket)
                        ((i++))
                        ;;
                -*) ;;
                *)
                        cmd=${words[i]}
                        cmd_at=$i
                        break
                        ;;
                esac
        done

        if [[ -z $cmd ]]; then
                case $prev in
                -b | --bundle)
                        COMPREPLY=($(compgen -d -- "$cur"))
                        return
                        ;;
                -S | --socket)
                        COMPREPLY=($(compgen -f -- "$cur"))
                        return
                        ;;
                esac
                if [[ $cur == -* ]]; then
                        COMPREPLY=($(compgen -W "$global_opts" -- "$cur"))
                else
                        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
                fi
                return
        fi

        # After `--` (exec's command) complete commands and files.
        for ((i = cmd_at + 1; i < cword; i++)); do
                if [[ ${words[i]} == -- ]]; then
                        COMPREPLY=($(compgen -c -f -- "$cur"))
                        return
                fi
        done

        local opts="-h --help"
        case $cmd in
        kill)
                case $prev in
                -s | --signal)
                        COMPREPLY=($(compgen -W "$(_ctrmonctl_signals)" -- "${cur^^}"))
                        return
                        ;;
                esac
                opts+=" -s --signal --all"
                ;;
        exec)
                [[ $prev == --timeout ]] && return
                opts+=" -i --interactive -t --tty --timeout --"
                ;;
        attach)
                [[ $prev == --detach-keys ]] && return
                opts+=" --detach-keys --no-stdin --lossy"
                ;;
        logs)
                [[ $prev == -n || $prev == --tail ]] && return
                opts+=" -n --tail -f --follow"
                ;;
        run)
                case $prev in
                --name | -n | --runtime-arg | --detach-keys)
                        return
                        ;;
                --runtime | -r)
                        COMPREPLY=($(compgen -c -f -- "$cur"))
                        return
                        ;;
                esac
                opts+=" -n --name -t --tty -i --interactive -d --detach -r --runtime --runtime-arg --detach-keys"
                if [[ $cur != -* ]]; then
                        COMPREPLY=($(compgen -d -- "$cur"))
                        return
                fi
                ;;
        status | ps | wait | resize | stats | events | version) ;;
        *)
                return
                ;;
        esac
        if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        fi
}

complete -F _ctrmonctl ctrmonctl
