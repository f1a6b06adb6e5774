#!/usr/bin/env bash
# Why the library code writes and reads JSON with JSONKit instead of Foundation: the cost of Foundation in a
# statically linked Swift program (as nsinspect is built), measured as the peak RSS and the size of two
# otherwise equal programs that print one `ip -j`-like object, one with JSONSerialization, one without.
# Usage: Benchmarks/foundation.sh   (needs the Swift toolchain; GNU time for the peak RSS)
set -euo pipefail
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/with.swift" <<'SWIFT'
import Foundation
let object: [String: Any] = ["ifname": "eth0", "ifindex": 2, "addr_info": [["local": "10.0.0.1", "prefixlen": 24]]]
FileHandle.standardOutput.write(try! JSONSerialization.data(withJSONObject: object))
SWIFT
cat > "$dir/without.swift" <<'SWIFT'
print(#"{"ifname":"eth0","ifindex":2,"addr_info":[{"local":"10.0.0.1","prefixlen":24}]}"#)
SWIFT
for program in with without; do
  swiftc -O -static-stdlib "$dir/$program.swift" -o "$dir/$program" 2>/dev/null
  rss=$( { /usr/bin/time -f '%M' "$dir/$program" >/dev/null; } 2>&1 | tail -1)
  size=$(stat -c %s "$dir/$program")
  awk -v p="$program" -v r="$rss" -v s="$size" 'BEGIN { printf "%-8s Foundation: peak RSS %.1f MB, binary %.1f MB\n", p, r / 1024, s / 1048576 }'
done
