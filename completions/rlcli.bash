_rlcli_completion() {
    local IFS=$'\n'
    local line="${COMP_LINE:0:COMP_POINT}"
    local words
    IFS=$' \t\n' read -r -a words <<< "$line"
    [[ "$line" =~ [[:space:]]$ ]] && words+=("")
    local cword=$(( ${#words[@]} - 1 ))
    # bash's current word is the tail of the typed word after its last ':' or '='
    local kept="${words[cword]%"${COMP_WORDS[COMP_CWORD]}"}"
    local replies
    replies=( $( env COMP_WORDS="${words[*]}" \
                     COMP_CWORD=$cword \
                     _RLCLI_COMPLETE=complete_bash $1 ) )
    COMPREPLY=( "${replies[@]#"$kept"}" )
    # a key waiting for its value (ppo.lr=) takes no space after it
    [[ ${#COMPREPLY[@]} -eq 1 && "${COMPREPLY[0]}" == *= ]] && compopt -o nospace
    return 0
}

complete -o default -F _rlcli_completion rlcli