# Sourced by the fetch scripts: sets `cache` to lantern's cache root, as `lantern fetch`
# finds it: $LANTERN_CACHE, else $XDG_CACHE_HOME/lantern, else ~/.cache/lantern.
if [ -n "${LANTERN_CACHE:-}" ]; then
    cache=$LANTERN_CACHE
elif [ -n "${XDG_CACHE_HOME:-}" ]; then
    cache=$XDG_CACHE_HOME/lantern
else
    cache=$HOME/.cache/lantern
fi
