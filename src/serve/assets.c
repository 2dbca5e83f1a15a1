/* Files served as they are: the OpenAPI description (openapi.json) and the page that renders it
 * (docs.html), built into the binary with the assembler's .incbin, so the server needs no data
 * files beside it. The Makefile names both as prerequisites of this object. */
#include "serve/assets.h"

/* Paths are relative to the repository root, where make runs the compiler. */
__asm__(".section .rodata\n"
        ".balign 16\n"
        ".global ake_asset_openapi_json\n"
        "ake_asset_openapi_json:\n"
        ".incbin \"src/serve/openapi.json\"\n"
        ".global ake_asset_openapi_json_end\n"
        "ake_asset_openapi_json_end:\n"
        ".byte 0\n"
        ".balign 16\n"
        ".global ake_asset_docs_html\n"
        "ake_asset_docs_html:\n"
        ".incbin \"src/serve/docs.html\"\n"
        ".global ake_asset_docs_html_end\n"
        "ake_asset_docs_html_end:\n"
        ".byte 0\n"
        ".previous\n");
