#!/usr/bin/env bash
# Fuzzes the data pipeline's untrusted-input parsers with libFuzzer + AddressSanitizer + UBSan:
#   fuzz_image  the image decoder: our validator (data/image_guard.cpp) in front of Debian's
#               stb_image 2.27 from /usr/include/stb, bounded, + resize (tests/fuzz/fuzz_image.cpp)
#   fuzz_csv    the FER2013 CSV parser + round trip  (tests/fuzz/fuzz_csv.cpp)
# Builds them with clang (installed with apt-get if missing), seeds each corpus (a few real FER
# JPEGs when the data set is present, plus generated PNG/JPEG/CSV files), runs each target for
# FUZZ_SECONDS (default 60) and prints the executions and crashes of each. Exit status 1 if any
# target found a crash, leak, timeout or out-of-memory input (saved under $FUZZ_OUT/artifacts/).
#
#   scripts/fuzz.sh                      both targets, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh csv one target, 10 minutes
#   FUZZ_OUT=/tmp/fz FER_DATA=/path/to/fer2013 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
OUT=${FUZZ_OUT:-build-fuzz}
FER_DATA=${FER_DATA:-../shared/fer2013}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(image csv)

# ---- Toolchain: clang with the libFuzzer runtime ------------------------------------------------
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
fuzzer_works() {
  command -v clang++ >/dev/null 2>&1 || return 1
  local probe; probe=$(mktemp -d)
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
    > "$probe/p.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1
  local rc=$?; rm -rf "$probe"; return $rc
}
if ! fuzzer_works; then
  echo "fuzz: installing clang and the libFuzzer runtime"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang >/dev/null
  if ! fuzzer_works; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      libclang-rt-14-dev >/dev/null || \
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      libclang-rt-dev >/dev/null
  fi
  fuzzer_works || { echo "fuzz: clang++ -fsanitize=fuzzer does not link; giving up" >&2; exit 2; }
fi

# ---- Build ----------------------------------------------------------------------------------------
mkdir -p "$OUT/obj" "$OUT/artifacts"
STB_INC=/usr/include/stb  # Debian's libstb-dev: stb_image 2.27 and stb_image_write, unmodified
common=(-std=c++20 -g -O1 -I. -I"$STB_INC" -Wno-unused-parameter)
san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
lib_sources=(data/image.cpp data/image_guard.cpp data/dataset.cpp data/fer2013.cpp data/fer_csv.cpp data/fer_folder.cpp)
objs=()
for src in "${lib_sources[@]}"; do
  obj="$OUT/obj/$(basename "${src%.cpp}").o"
  clang++ "${common[@]}" "${san[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  objs+=("$obj")
done
for t in "${targets[@]}"; do
  clang++ "${common[@]}" "${san[@]}" -fsanitize=fuzzer "tests/fuzz/fuzz_$t.cpp" "${objs[@]}" \
    -o "$OUT/fuzz_$t"
done
clang++ "${common[@]}" -O1 tests/fuzz/make_seeds.cpp "${lib_sources[@]}" -o "$OUT/make_seeds"

# ---- Seed corpora ---------------------------------------------------------------------------------
"$OUT/make_seeds" "$OUT/seeds"
mkdir -p "$OUT/corpus/image" "$OUT/corpus/csv"
cp -n "$OUT/seeds/image/"* "$OUT/corpus/image/"
cp -n "$OUT/seeds/csv/"* "$OUT/corpus/csv/"
# Inputs that once crashed (kept as regression seeds; see tests/fuzz/regressions/).
for t in image csv; do
  [ -d "tests/fuzz/regressions/$t" ] && cp -n "tests/fuzz/regressions/$t/"* "$OUT/corpus/$t/" 2>/dev/null || true
done
if [ -d "$FER_DATA/val" ]; then
  for cls in angry disgust fear happy neutral sad surprise; do
    jpgs=("$FER_DATA/val/$cls"/*.jpg)  # sorted by the glob; the first one of each class
    [ -f "${jpgs[0]}" ] && cp "${jpgs[0]}" "$OUT/corpus/image/fer_$cls.jpg"
  done
else
  echo "fuzz: no FER2013 data at $FER_DATA; image seeds are generated only"
fi

# ---- Run --------------------------------------------------------------------------------------
status=0
summary=()
for t in "${targets[@]}"; do
  log="$OUT/fuzz_$t.log"
  before=$(ls "$OUT/artifacts" | grep -c "^$t-" || true)
  echo "fuzz: running fuzz_$t for ${FUZZ_SECONDS}s (log: $log)"
  set +e
  "$OUT/fuzz_$t" "$OUT/corpus/$t" -max_total_time="$FUZZ_SECONDS" -max_len=65536 -timeout=25 \
    -rss_limit_mb=2560 -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t-" >"$log" 2>&1
  rc=$?
  set -e
  after=$(ls "$OUT/artifacts" | grep -c "^$t-" || true)
  crashes=$((after - before))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || true)
  corpus=$(ls "$OUT/corpus/$t" | wc -l)
  line="fuzz_$t: ${execs:-?} execs in ${secs:-?} s, corpus $corpus inputs, crashes $crashes (exit $rc)"
  summary+=("$line")
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
    grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -n 20 || true
  fi
done
echo "---- fuzz summary ----"
printf '%s\n' "${summary[@]}"
exit $status
