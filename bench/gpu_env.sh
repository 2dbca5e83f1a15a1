# Sourced by bench/gpu.sh on a GPU machine: makes the build's Debian libraries (oneDNN, json-c,
# utf8proc, libmicrohttpd and what it links, libcrypto, protobuf-c), make, protoc-c
# (the ONNX importer's generated parser) and wrk with its LuaJIT (bench/loadgen_vs_wrk.sh) available where the
# machine's image lacks them, from .deb files carried in $AKE_DEBS (default .carry/debs, made
# here by `bash bench/gpu_carry.sh`), unpacked under /tmp/akedeps, never over /. The libraries
# are Debian 12's (glibc 2.36), which run on newer glibc.
AKE_DEBS=${AKE_DEBS:-.carry/debs}
need=0
for lib in libdnnl.so libjson-c.so libutf8proc.so libmicrohttpd.so libcrypto.so libprotobuf-c.so; do
    ldconfig -p 2>/dev/null | grep -q "$lib " || need=1
done
command -v make >/dev/null || need=1
command -v protoc-c >/dev/null || need=1
command -v wrk >/dev/null || need=1
if [ "$need" = 1 ]; then
    if [ -d "$AKE_DEBS" ]; then
        mkdir -p /tmp/akedeps
        for f in "$AKE_DEBS"/*.deb; do dpkg -x "$f" /tmp/akedeps; done
        echo "gpu_env: libraries unpacked from $AKE_DEBS into /tmp/akedeps"
    fi
    [ -d /tmp/akedeps/usr/lib/x86_64-linux-gnu ] || { echo "gpu_env: libraries missing, nothing to unpack" >&2; return 1; }
    export CPATH=/tmp/akedeps/usr/include:/tmp/akedeps/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}
    export LIBRARY_PATH=/tmp/akedeps/usr/lib/x86_64-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}
    export LD_LIBRARY_PATH=/tmp/akedeps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    command -v make >/dev/null && command -v protoc-c >/dev/null && command -v wrk >/dev/null ||
        export PATH=$PATH:/tmp/akedeps/usr/bin
fi
