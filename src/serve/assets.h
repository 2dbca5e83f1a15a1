/* Static files of the server (serve/assets.c): [start, end) bytes each, NUL after end. */
#ifndef AKE_SERVE_ASSETS_H
#define AKE_SERVE_ASSETS_H

extern const char ake_asset_openapi_json[], ake_asset_openapi_json_end[];
extern const char ake_asset_docs_html[], ake_asset_docs_html_end[];

#endif
