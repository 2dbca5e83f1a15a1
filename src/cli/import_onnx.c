/* `akidb-embed import-onnx`: a BERT encoder exported to ONNX in, an ordinary model folder
 * out (src/onnx/onnx_import.h says how the graph is read). An ONNX file carries neither a
 * tokenizer nor the sentence-transformers head, so the tokenizer is copied from another folder
 * and pooling, normalization and max_seq_length are options. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "onnx/onnx_import.h"

static const char import_help[] =
    "usage: akidb-embed import-onnx MODEL.onnx --tokenizer-from DIR --out DIR [options]\n"
    "  Writes a model folder (config.json, model.safetensors, the sentence-transformers files and\n"
    "  the tokenizer) from a BERT encoder exported to ONNX with its parameter names (torch.onnx,\n"
    "  optimum, sentence-transformers). Linear weights are found by walking the graph from each\n"
    "  named bias back to its MatMul; the heads from the query's Reshape. A graph that is not a\n"
    "  BERT encoder is refused with what was not found. The folder is loaded once to check it.\n"
    "  --tokenizer-from DIR   copy tokenizer.json / vocab.txt / tokenizer_config.json /\n"
    "                         special_tokens_map.json from DIR (an ONNX file has no tokenizer)\n"
    "  --out DIR              the folder to write (created; an existing one must be empty)\n"
    "  --pooling P            mean (default), cls or max\n"
    "  --normalize            L2-normalize the embeddings (adds a Normalize module)\n"
    "  --max-seq-length N     tokens per text (default: the model's max_position_embeddings)\n"
    "  --heads N              attention heads, when the graph's Reshape does not say\n";

int ake_cmd_import_onnx(int argc, char **argv) {
    enum { O_TOK = 1, O_OUT, O_POOL, O_NORM, O_MAXSEQ, O_HEADS, O_HELP };
    static const struct option longopts[] = {
        {"tokenizer-from", required_argument, 0, O_TOK}, {"out", required_argument, 0, O_OUT},
        {"pooling", required_argument, 0, O_POOL},       {"normalize", no_argument, 0, O_NORM},
        {"max-seq-length", required_argument, 0, O_MAXSEQ}, {"heads", required_argument, 0, O_HEADS},
        {"help", no_argument, 0, O_HELP},                {0, 0, 0, 0}};
    ake_onnx_import_opts o = {.pooling = AKE_POOL_MEAN};
    const char *out = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_TOK: o.tokenizer_from = optarg; break;
        case O_OUT: out = optarg; break;
        case O_NORM: o.normalize = true; break;
        case O_POOL:
            if (!strcmp(optarg, "mean")) o.pooling = AKE_POOL_MEAN;
            else if (!strcmp(optarg, "cls")) o.pooling = AKE_POOL_CLS;
            else if (!strcmp(optarg, "max")) o.pooling = AKE_POOL_MAX;
            else {
                ake_cli_error("import-onnx", "--pooling expects mean, cls or max, got '%s'", optarg);
                return 2;
            }
            break;
        case O_MAXSEQ:
            if (!ake_cli_parse_int("--max-seq-length", optarg, 1, 1 << 20, &o.max_seq_length)) return 2;
            break;
        case O_HEADS:
            if (!ake_cli_parse_int("--heads", optarg, 1, 16384, &o.heads)) return 2;
            break;
        case O_HELP: fputs(import_help, stdout); return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1) {
        ake_cli_error("import-onnx", "needs exactly one ONNX file (akidb-embed import-onnx --help)");
        return 2;
    }
    if (!o.tokenizer_from || !out) {
        ake_cli_error("import-onnx", "needs --tokenizer-from DIR (an ONNX file has no tokenizer) and --out DIR");
        return 2;
    }
    const char *path = argv[optind];
    char err[1024];
    ake_model_config cfg;
    if (ake_onnx_import(path, out, &o, &cfg, err, sizeof err) != AKE_OK) {
        ake_cli_error("import-onnx", "%s", err);
        return 1;
    }
    printf("wrote %s: %d layers, hidden %d, %d heads, intermediate %d, vocab %d, %s pooling%s, max_seq_length %d\n",
           out, cfg.layers, cfg.hidden, cfg.heads, cfg.intermediate, cfg.vocab_size, ake_pooling_name(cfg.pooling),
           cfg.normalize ? ", normalized" : "", cfg.max_seq_length);
    return 0;
}
