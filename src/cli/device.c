#include "cli/device.h"

#include <stdio.h>
#include <string.h>

bool ake_cli_parse_precision(const char *cmd, const char *s, ake_precision *out) {
    if (ake_precision_parse(s, out) == 0) return true;
    fprintf(stderr, "akidb-embed %s: --dtype expects fp32, fp16, bf16, int8 or fp8, got '%s'\n", cmd, s);
    return false;
}

void ake_cli_note_device(const char *cmd, const char *requested, const ake_engine *e) {
    if (requested && strcmp(requested, "auto") == 0 && strcmp(ake_engine_device(e), "cpu") == 0)
        fprintf(stderr, "akidb-embed %s: --device auto: no CUDA GPU is visible, running on the CPU in %s\n", cmd,
                ake_precision_name(ake_engine_precision(e)));
}
