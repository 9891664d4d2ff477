#!/bin/sh
# Writes a stub source for every build target that the Cargo manifests under the current
# directory name, so that cargo can load the whole workspace from its manifests alone and the
# image's dependency layer builds before any real source is copied in.
#
# Cargo refuses a manifest whose targets' files are missing (`can't find 'scale' bench at
# 'benches/scale.rs'`), also when building a single other target, and loads every workspace
# member the same way. So for each Cargo.toml found (the Dockerfile copies every member's):
#   [lib]                       its path, or src/lib.rs            (empty file)
#   [[bin]]                     its path, or src/main.rs for the package's own name,
#                               else src/bin/NAME.rs               (fn main() {})
#   [[bench]] [[test]] [[example]]  their path, or benches|tests|examples/NAME.rs
#   [package] build = "FILE"    FILE
#   neither [lib] nor [[bin]]   src/lib.rs, so the package has a target to load
# Existing files are left alone. The stubs of targets the image does not build stay in place
# for the real build, which loads the same manifests.
set -eu

find . -name Cargo.toml -not -path './target/*' | while read -r manifest; do
  dir=${manifest%/Cargo.toml}
  awk '
    function value(line) {
      sub(/^[ \t]*[a-z]+[ \t]*=[ \t]*"/, "", line)
      sub(/".*$/, "", line)
      return line
    }
    function flush() {
      if (kind == "") return
      if (path == "") {
        if (kind == "lib") path = "src/lib.rs"
        else if (kind == "bin") path = (name == package) ? "src/main.rs" : "src/bin/" name ".rs"
        else if (kind == "bench") path = "benches/" name ".rs"
        else if (kind == "test") path = "tests/" name ".rs"
        else if (kind == "example") path = "examples/" name ".rs"
      }
      print (kind == "lib" ? "lib" : "main") " " path
      if (kind == "lib" || kind == "bin") has_lib_or_bin = 1
      kind = ""
    }
    /^[ \t]*\[/ {
      flush()
      section = $0
      gsub(/[ \t]/, "", section)
      name = ""; path = ""
      if (section == "[lib]") kind = "lib"
      else if (section ~ /^\[\[(bin|bench|test|example)\]\]$/) kind = substr(section, 3, length(section) - 4)
      next
    }
    section == "[package]" && /^[ \t]*name[ \t]*=[ \t]*"/ { package = value($0) }
    section == "[package]" && /^[ \t]*build[ \t]*=[ \t]*"/ { print "main " value($0) }
    kind != "" && /^[ \t]*name[ \t]*=[ \t]*"/ { name = value($0) }
    kind != "" && /^[ \t]*path[ \t]*=[ \t]*"/ { path = value($0) }
    END {
      flush()
      if (!has_lib_or_bin) print "lib src/lib.rs"
    }
  ' "$manifest" | while read -r body file; do
    stub="$dir/$file"
    [ -e "$stub" ] && continue
    mkdir -p "$(dirname "$stub")"
    if [ "$body" = lib ]; then
      : >"$stub"
    else
      echo 'fn main() {}' >"$stub"
    fi
  done
done
