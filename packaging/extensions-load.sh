# Shared by the package scripts (the build scripts paste it in front of each maintainer script,
# so every script stands alone): add or remove one line of an osquery extensions.load file
# without touching the operator's other lines. Needs only sh, grep, mv and rm (a Debian chroot
# made by `dpkg --root` has little more).

# add_extension FILE PATH: append PATH unless a line equal to it is already there.
add_extension() {
  _file=$1 _ext=$2
  if [ -f "$_file" ] && grep -qxF "$_ext" "$_file"; then
    return 0
  fi
  _tmp=$_file.launchwatch-new
  {
    # Copy what is there (even a last line without its newline), then ours.
    if [ -f "$_file" ]; then
      while IFS= read -r _line || [ -n "$_line" ]; do printf '%s\n' "$_line"; done <"$_file"
    fi
    printf '%s\n' "$_ext"
  } >"$_tmp"
  mv -f "$_tmp" "$_file"
}

# remove_extension FILE PATH: drop every line equal to PATH; remove FILE if nothing is left.
remove_extension() {
  _file=$1 _ext=$2
  [ -f "$_file" ] || return 0
  grep -qxF "$_ext" "$_file" || return 0
  _tmp=$_file.launchwatch-new
  while IFS= read -r _line || [ -n "$_line" ]; do
    [ "$_line" = "$_ext" ] || printf '%s\n' "$_line"
  done <"$_file" >"$_tmp"
  if [ -s "$_tmp" ]; then
    mv -f "$_tmp" "$_file"
  else
    rm -f "$_tmp" "$_file"
  fi
}
