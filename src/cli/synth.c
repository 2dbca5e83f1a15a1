/* `akidb-embed synth`: a loadable model folder of a known architecture with seeded
 * random weights and the default model's tokenizer, for tests and benchmarks of
 * configurations whose weights no package ships. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/synth.h"

int ake_cmd_synth(int argc, char **argv) {
    enum { O_ARCH = 1, O_SEED, O_OUT, O_DTYPE, O_TOKENIZER, O_HELP };
    static const struct option longopts[] = {
        {"arch", required_argument, 0, O_ARCH},           {"seed", required_argument, 0, O_SEED},
        {"out", required_argument, 0, O_OUT},             {"dtype", required_argument, 0, O_DTYPE},
        {"tokenizer-from", required_argument, 0, O_TOKENIZER}, {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}};
    const char *arch = NULL, *out = NULL, *tok_dir = AKE_DEFAULT_MODEL;
    uint64_t seed = 0;
    ake_model_synth_opts opts = {.dtype = AKE_DT_F32};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_ARCH: arch = optarg; break;
        case O_OUT: out = optarg; break;
        case O_TOKENIZER: tok_dir = optarg; break;
        case O_SEED: {
            char *end;
            errno = 0;
            seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-') {
                ake_cli_error("synth", "--seed expects a non-negative integer, got '%s'", optarg);
                return 2;
            }
            break;
        }
        case O_DTYPE:
            if (!strcmp(optarg, "f32")) opts.dtype = AKE_DT_F32;
            else if (!strcmp(optarg, "f16")) opts.dtype = AKE_DT_F16;
            else if (!strcmp(optarg, "bf16")) opts.dtype = AKE_DT_BF16;
            else {
                ake_cli_error("synth", "--dtype expects f32, f16 or bf16, got '%s'", optarg);
                return 2;
            }
            break;
        case O_HELP:
            printf("usage: akidb-embed synth --arch ARCH --seed N --out DIR [--dtype f32|f16|bf16] "
                   "[--tokenizer-from DIR]\n"
                   "  Writes a model folder with seeded random weights of a real configuration.\n"
                   "  ARCH: %s\n"
                   "  --tokenizer-from DIR  copy the tokenizer files from DIR (default " AKE_DEFAULT_MODEL ")\n",
                   ake_model_synth_archs());
            return 0;
        default: return 2;
        }
    }
    if (!arch || !out || optind < argc) {
        ake_cli_error("synth", "needs --arch (%s) and --out DIR", ake_model_synth_archs());
        return 2;
    }
    char err[512];
    if (ake_model_synth_ex(arch, seed, tok_dir, out, &opts, err, sizeof err) != AKE_OK) {
        ake_cli_error("synth", "%s", err);
        return 1;
    }
    printf("wrote %s (%s, seed %" PRIu64 ")\n", out, arch, seed);
    return 0;
}
