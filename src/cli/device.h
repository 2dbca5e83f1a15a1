/* --device / --dtype handling shared by the subcommands that run an engine. */
#ifndef AKE_CLI_DEVICE_H
#define AKE_CLI_DEVICE_H

#include <stdbool.h>

#include "engine/engine.h"

#define AKE_CLI_DEVICE_HELP                                                                      \
    "  --device D        cpu (default), cuda:N, or auto (the first GPU if one is visible, else the CPU)\n" \
    "  --dtype P         fp32 (CPU default), fp16 (CUDA default), bf16 (CUDA), int8 (W8A8, CPU and\n"               \
    "                    CUDA), fp8 (W8A8 E4M3, CUDA compute capability 8.9+): on a float model,\n"               \
    "                    dynamic quantization; a quantized folder runs in its own type by default\n"               \
    "  AKE_CUDA_GRAPHS=0, AKE_CUDA_GEMM_TUNE=1, AKE_CUDA_RES32=0|1, AKE_CUDA_ATTN=1,\n"                         \
    "  AKE_CUDA_GELU=tanh, AKE_CUDA_SYNC=spin|yield|block: CUDA engine knobs for measuring (engine.h)\n"

/* Parses a --dtype value into *out; prints an error naming the flag and returns false if bad. */
bool ake_cli_parse_precision(const char *cmd, const char *s, ake_precision *out);

/* After the engine is made: when `requested` was "auto" and it landed on the CPU, says so
 * on stderr, with the precision it runs in (fp32, or int8 where asked). */
void ake_cli_note_device(const char *cmd, const char *requested, const ake_engine *e);

#endif
