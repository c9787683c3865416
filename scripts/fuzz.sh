#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer + AddressSanitizer + UBSan:
#   fuzz_image        the image decoder: our validator (data/image_guard.cpp) in front of Debian's
#                     stb_image 2.27 from /usr/include/stb, bounded, + resize
#   fuzz_csv          the FER2013 CSV parser + round trip
#   fuzz_safetensors  the safetensors reader (engine/safetensors.cpp), from memory and from a file
#   fuzz_cascade      the Haar cascade XML reader (data/face_detect.cpp), accepted cascades run
#   fuzz_serve        fer_serve's request handling (apps/serve/requests.cpp) behind httplib's parser
#   fuzz_list         fer_predict's --list file (apps/cli/path_list.cpp)
#   fuzz_checkpoint   a checkpoint's metadata into the model spec and network, the calibration, the
#                     CRC table and what --resume reads (apps/training/checkpoint.cpp, resume_state,
#                     finetune, the optimizers, the plateau schedule)
# (sources: tests/fuzz/fuzz_<target>.cpp). Builds them with clang (installed with apt-get if
# missing), seeds each corpus (generated files, and real ones: a few FER JPEGs when the data set
# is present, OpenCV's cascades from opencv-data, the shipped checkpoint's header and metadata),
# runs each target for FUZZ_SECONDS (default 60), with tests/fuzz/fuzz_<target>.dict as libFuzzer's
# dictionary where there is one, and prints the executions and crashes of each. Exit status
# 1 if any target found a crash, leak, timeout or out-of-memory input (saved under
# $FUZZ_OUT/artifacts/). Inputs that once crashed are kept in tests/fuzz/regressions/<target>/
# and start every run.
#
#   scripts/fuzz.sh                      every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh csv one target, 10 minutes
#   FUZZ_OUT=/tmp/fz FER_DATA=/path/to/fer2013 scripts/fuzz.sh
#   FUZZ_JOBS=1 scripts/fuzz.sh checkpoint   compile one file at a time (default: one per core)
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
OUT=${FUZZ_OUT:-build-fuzz}
FER_DATA=${FER_DATA:-../shared/fer2013}
FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(image csv safetensors cascade serve list checkpoint)

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
# What each target links besides its own file, all compiled with the sanitizers and coverage.
mkdir -p "$OUT/obj" "$OUT/artifacts"
STB_INC=/usr/include/stb  # Debian's libstb-dev: stb_image 2.27 and stb_image_write, unmodified
data_sources=(data/image.cpp data/image_guard.cpp data/dataset.cpp data/fer2013.cpp data/fer_csv.cpp data/fer_folder.cpp)
# A Tensor needs the engine and its CPU backend (kernels/backends.cpp serves backend(Device::CPU)).
engine_sources=(engine/*.cpp engine/ops/*.cpp kernels/backends.cpp kernels/cpu/*.cpp)
# The model registry and its layers; what load_checkpoint and fer_train's resume read metadata with.
model_sources=(models/*.cpp layers/*.cpp)
training_sources=(apps/training/checkpoint.cpp apps/training/resume_state.cpp apps/training/finetune.cpp)
sources_of() {
  case "$1" in
    image|csv)   echo "${data_sources[*]}" ;;
    cascade)     echo "data/face_detect.cpp ${data_sources[*]}" ;;
    safetensors) echo "${engine_sources[*]}" ;;
    serve)       echo "apps/serve/requests.cpp apps/serve/guarded_server.cpp" ;;
    list)        echo "apps/cli/path_list.cpp" ;;
    checkpoint)  echo "${training_sources[*]} ${model_sources[*]} ${engine_sources[*]}" ;;
    *) echo "fuzz: unknown target '$1'" >&2; exit 2 ;;
  esac
}
libs_of() {
  case "$1" in
    serve) pkg-config --libs cpp-httplib ;;  # Debian's library: not instrumented, but it is what fer_serve runs
    *) echo "" ;;
  esac
}
# Debian builds cpp-httplib with OpenSSL/zlib/brotli: its classes' layout depends on these defines.
read -r -a httplib_flags <<< "$(pkg-config --cflags cpp-httplib)"
common=(-std=c++20 -g -O1 -I. -I"$STB_INC" "${httplib_flags[@]}" -fopenmp -Wno-unused-parameter)
san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
# The CPU kernels' per-instruction-set files, as CMakeLists.txt compiles them.
isa_flags() {
  case "$1" in
    *_amxbf16.cpp)    echo "-mavx2 -mfma -mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx512bf16 -mamx-tile -mamx-bf16" ;;
    *_avx512bf16.cpp) echo "-mavx2 -mfma -mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx512bf16" ;;
    *_avx512.cpp)     echo "-mavx2 -mfma -mavx512f -mavx512dq -mavx512bw -mavx512vl" ;;
    *_avx2.cpp)       echo "-mavx2 -mfma" ;;
  esac
}
needed=()
for t in "${targets[@]}"; do
  read -r -a srcs <<< "$(sources_of "$t")"
  needed+=("${srcs[@]}")
done
mapfile -t needed < <(printf '%s\n' "${needed[@]}" | sort -u)
object_of() { local o="${1%.cpp}"; echo "$OUT/obj/${o//\//_}.o"; }
# An object is reused when it is newer than this script (its flags), its source and every project
# header the source included (the .d file clang wrote with it): a target that links the engine
# compiles some 60 files, most of an hour on two shared cores.
up_to_date() {
  local obj=$1 dep="${1%.o}.d" f
  [ -f "$obj" ] && [ -f "$dep" ] && [ ! scripts/fuzz.sh -nt "$obj" ] || return 1
  for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$dep"); do
    [ -e "$f" ] && [ ! "$f" -nt "$obj" ] || return 1
  done
}
jobs_running=0
for src in "${needed[@]}"; do
  obj=$(object_of "$src")
  up_to_date "$obj" && continue
  rm -f "$obj" "${obj%.o}.d"  # a failed compile must not leave last run's object to link
  # shellcheck disable=SC2046  # isa_flags is a word list on purpose
  clang++ "${common[@]}" "${san[@]}" $(isa_flags "$src") -fsanitize=fuzzer-no-link -MMD -MF "${obj%.o}.d" \
    -c "$src" -o "$obj" &
  if (( ++jobs_running >= FUZZ_JOBS )); then wait -n; jobs_running=$((jobs_running - 1)); fi
done
wait
for t in "${targets[@]}"; do
  read -r -a srcs <<< "$(sources_of "$t")"
  objs=()
  for src in "${srcs[@]}"; do objs+=("$(object_of "$src")"); done
  # shellcheck disable=SC2046
  clang++ "${common[@]}" "${san[@]}" -fsanitize=fuzzer "tests/fuzz/fuzz_$t.cpp" "${objs[@]}" \
    $(libs_of "$t") -o "$OUT/fuzz_$t"
done
clang++ "${common[@]}" -O1 tests/fuzz/make_seeds.cpp "${data_sources[@]}" -o "$OUT/make_seeds"

# ---- Seed corpora ---------------------------------------------------------------------------------
"$OUT/make_seeds" "$OUT/seeds" models/pretrained/fer_vgg_small.safetensors
for t in "${targets[@]}"; do
  mkdir -p "$OUT/corpus/$t"
  cp -n "$OUT/seeds/$t/"* "$OUT/corpus/$t/"
  # Inputs that once crashed (kept as regression seeds; see tests/fuzz/regressions/).
  [ -d "tests/fuzz/regressions/$t" ] && cp -n "tests/fuzz/regressions/$t/"* "$OUT/corpus/$t/" 2>/dev/null || true
done
if [ -d "$OUT/corpus/image" ]; then
  if [ -d "$FER_DATA/val" ]; then
    for cls in angry disgust fear happy neutral sad surprise; do
      jpgs=("$FER_DATA/val/$cls"/*.jpg)  # sorted by the glob; the first one of each class
      [ -f "${jpgs[0]}" ] && cp "${jpgs[0]}" "$OUT/corpus/image/fer_$cls.jpg"
    done
  else
    echo "fuzz: no FER2013 data at $FER_DATA; image seeds are generated only"
  fi
fi
# OpenCV's own cascades (Debian's opencv-data), what fer_predict and fer_serve really read.
if [ -d "$OUT/corpus/cascade" ]; then
  if compgen -G "/usr/share/opencv4/haarcascades/*.xml" >/dev/null; then
    cp -n /usr/share/opencv4/haarcascades/*.xml "$OUT/corpus/cascade/"
  else
    echo "fuzz: no /usr/share/opencv4/haarcascades (opencv-data); cascade seeds are generated only"
  fi
fi

# ---- Run --------------------------------------------------------------------------------------
status=0
summary=()
for t in "${targets[@]}"; do
  log="$OUT/fuzz_$t.log"
  before=$(ls "$OUT/artifacts" | grep -c "^$t-" || true)
  echo "fuzz: running fuzz_$t for ${FUZZ_SECONDS}s (log: $log)"
  dict=()
  [ -f "tests/fuzz/fuzz_$t.dict" ] && dict=(-dict="tests/fuzz/fuzz_$t.dict")
  set +e
  # 64 KB: OpenCV's cascades (47 KB to 2.6 MB) are cut there, which keeps mutations fast (a whole
  # 900 KB cascade ran at ~20 executions a second); seed_small.xml is a whole one.
  "$OUT/fuzz_$t" "$OUT/corpus/$t" "${dict[@]}" -max_total_time="$FUZZ_SECONDS" -max_len=65536 -timeout=25 \
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
