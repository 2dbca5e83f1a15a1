/* akidb-embed: one binary, one subcommand per file in src/cli/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char usage[] =
    "akidb-embed " AKE_VERSION " — BERT-family sentence embeddings on the CPU or NVIDIA GPUs\n"
    "\n"
    "usage: akidb-embed <command> [options]   (akidb-embed <command> --help for its options)\n"
    "\n"
    "commands:\n"
    "  serve      serve embeddings over HTTP (TEI and OpenAI APIs) with dynamic batching\n"
    "  loadgen    drive a server open-loop at a fixed rate; report QPS and latency percentiles\n"
    "  embed      embed texts (one per line, or JSON string literals with --jsonl) to JSON arrays\n"
    "  tokenize   print the token ids of each text as a JSON array\n"
    "  bench      time the engine alone over a (batch x seq) grid\n"
    "  synth      write a random-weight model folder of a known architecture\n"
    "  quantize   write an INT8 or FP8 copy of a model folder, calibrated on real text and gated\n"
    "  validate   compare a model's embeddings with a reference model's (cosine, recall@10, gate)\n"
    "  import-onnx  write a model folder from a BERT encoder exported to ONNX\n"
    "  ab decide  an A/B experiment's rollout decision from a snapshot of its samples, offline\n"
    "  distill    train a smaller student from a teacher model on a text corpus (AdamW, checkpoints)\n"
    "  version    print the version\n";

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve") && !getenv("OMP_WAIT_POLICY")) {
        /* The CPU engine's OpenMP threads must not spin between parallel regions against the HTTP
         * threads on the same cores: passive waiting answers more requests sooner on the 2-core
         * box (README, "OpenMP waiting"). libgomp reads OMP_WAIT_POLICY once, when it is loaded,
         * before main: so set it and start again, the same process (pid) with the same arguments.
         * A policy set by the user is kept. */
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
        perror("akidb-embed serve: re-exec with OMP_WAIT_POLICY=passive failed; continuing with the default");
    }
    if (!strcmp(cmd, "serve")) return ake_cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "loadgen")) return ake_cmd_loadgen(argc - 1, argv + 1);
    if (!strcmp(cmd, "embed")) return ake_cmd_embed(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return ake_cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return ake_cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "synth")) return ake_cmd_synth(argc - 1, argv + 1);
    if (!strcmp(cmd, "validate")) return ake_cmd_validate(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return ake_cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "import-onnx")) return ake_cmd_import_onnx(argc - 1, argv + 1);
    if (!strcmp(cmd, "ab")) return ake_cmd_ab(argc - 1, argv + 1);
    if (!strcmp(cmd, "distill")) return ake_cmd_distill(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        puts("akidb-embed " AKE_VERSION);
        return 0;
    }
    fprintf(stderr, "akidb-embed: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
