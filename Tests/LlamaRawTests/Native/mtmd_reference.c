// The native multimodal reference: a prompt with media markers through libmtmd's C API, compiled
// by the tests against the pinned headers and the same libraries the Swift bindings load.
//
//   mtmd_reference LIB_DIR MODEL MMPROJ OUT_DIR N_PREDICT N_THREADS PROMPT [MEDIA...]
//
// MEDIA is `file:PATH` (decoded by mtmd-helper), or a generated image `gradient:W:H` (the same
// formula as the Swift tests' LlamaMedia(rgb:)), or `tone:N` (N samples of a generated sine at
// the projector's sample rate). For each media chunk, its embeddings (mtmd_encode_chunk, then
// mtmd_get_output_embd) are written raw to OUT_DIR/embd-<chunk index>.bin; then all chunks are
// evaluated with mtmd_helper_eval_chunks and N_PREDICT tokens generated greedily. Prints
// "chunk: INDEX TYPE N_TOKENS N_POS", "n_past: N" and "generated: ids".
#include "llama.h"
#include "mtmd.h"
#include "mtmd-helper.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet(enum ggml_log_level level, const char * text, void * user_data) {
    (void) user_data;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static unsigned char * gradient(unsigned w, unsigned h) {
    unsigned char * rgb = malloc((size_t) w * h * 3 + 1);
    const unsigned dx = w > 1 ? w - 1 : 1, dy = h > 1 ? h - 1 : 1, dxy = w + h > 2 ? w + h - 2 : 1;
    for (unsigned y = 0; y < h; y++) {
        for (unsigned x = 0; x < w; x++) {
            unsigned char * p = rgb + ((size_t) y * w + x) * 3;
            p[0] = (unsigned char) (x * 255u / dx);
            p[1] = (unsigned char) (y * 255u / dy);
            p[2] = (unsigned char) ((x + y) * 255u / dxy);
        }
    }
    return rgb;
}

static mtmd_bitmap * load_media(mtmd_context * mctx, const char * spec) {
    if (strncmp(spec, "file:", 5) == 0) {
        return mtmd_helper_bitmap_init_from_file(mctx, spec + 5, false, mtmd_helper_init_opt_default()).bitmap;
    }
    unsigned w = 0, h = 0;
    if (sscanf(spec, "gradient:%u:%u", &w, &h) == 2) {
        unsigned char * rgb = gradient(w, h);
        mtmd_bitmap * bitmap = mtmd_bitmap_init(w, h, rgb);
        free(rgb);
        return bitmap;
    }
    unsigned n = 0;
    if (sscanf(spec, "tone:%u", &n) == 1) {
        float * pcm = malloc(sizeof(float) * (n ? n : 1));
        const double rate = (double) mtmd_get_audio_sample_rate(mctx);
        for (unsigned i = 0; i < n; i++) pcm[i] = (float) (0.5 * sin(2.0 * 3.14159265358979323846 * 440.0 * (double) i / rate));
        mtmd_bitmap * bitmap = mtmd_bitmap_init_from_audio(n, pcm);
        free(pcm);
        return bitmap;
    }
    return NULL;
}

int main(int argc, char ** argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s LIB_DIR MODEL MMPROJ OUT_DIR N_PREDICT N_THREADS PROMPT [MEDIA...]\n", argv[0]);
        return 2;
    }
    const char * out_dir = argv[4];
    const int n_predict = atoi(argv[5]);
    const int n_threads = atoi(argv[6]);
    llama_log_set(quiet, NULL);
    mtmd_helper_log_set(quiet, NULL);
    ggml_backend_load_all_from_path(argv[1]);

    struct llama_model_params mparams = llama_model_default_params();
    struct llama_model * model = llama_model_load_from_file(argv[2], mparams);
    if (model == NULL) { fprintf(stderr, "cannot load the model\n"); return 1; }
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 2048;
    cparams.n_batch = 512;
    cparams.n_threads = n_threads;
    cparams.n_threads_batch = n_threads;
    struct llama_context * ctx = llama_init_from_model(model, cparams);
    if (ctx == NULL) { fprintf(stderr, "cannot create the context\n"); return 1; }

    struct mtmd_context_params pparams = mtmd_context_params_default();
    // LLAMA_VLM_GPU=1 (make check-vlm on a GPU machine): the projector on the GPU, as the Swift side then does.
    pparams.use_gpu = getenv("LLAMA_VLM_GPU") != NULL && strcmp(getenv("LLAMA_VLM_GPU"), "1") == 0;
    pparams.n_threads = n_threads;
    pparams.print_timings = false;
    pparams.warmup = false;
    mtmd_context * mctx = mtmd_init_from_file(argv[3], model, pparams);
    if (mctx == NULL) { fprintf(stderr, "cannot load the projector\n"); return 1; }

    const int n_media = argc - 8;
    mtmd_bitmap ** bitmaps = calloc((size_t) (n_media ? n_media : 1), sizeof(mtmd_bitmap *));
    for (int i = 0; i < n_media; i++) {
        bitmaps[i] = load_media(mctx, argv[8 + i]);
        if (bitmaps[i] == NULL) { fprintf(stderr, "cannot load media %s\n", argv[8 + i]); return 1; }
    }
    mtmd_input_chunks * chunks = mtmd_input_chunks_init();
    mtmd_input_text text = { argv[7], strlen(argv[7]), true, true };
    const int32_t status = mtmd_tokenize(mctx, chunks, &text, (const mtmd_bitmap **) bitmaps, (size_t) n_media);
    if (status != 0) { fprintf(stderr, "mtmd_tokenize failed: %d\n", status); return 1; }

    const size_t n_embd = (size_t) llama_model_n_embd_inp(model);
    for (size_t i = 0; i < mtmd_input_chunks_size(chunks); i++) {
        const mtmd_input_chunk * chunk = mtmd_input_chunks_get(chunks, i);
        const enum mtmd_input_chunk_type type = mtmd_input_chunk_get_type(chunk);
        const size_t n_tokens = mtmd_input_chunk_get_n_tokens(chunk);
        printf("chunk: %zu %d %zu %d\n", i, (int) type, n_tokens, (int) mtmd_input_chunk_get_n_pos(chunk));
        if (type == MTMD_INPUT_CHUNK_TYPE_TEXT) continue;
        if (mtmd_encode_chunk(mctx, chunk) != 0) { fprintf(stderr, "mtmd_encode_chunk failed\n"); return 1; }
        const float * embd = mtmd_get_output_embd(mctx);
        char path[4096];
        snprintf(path, sizeof path, "%s/embd-%zu.bin", out_dir, i);
        FILE * f = fopen(path, "wb");
        if (f == NULL || fwrite(embd, sizeof(float), n_tokens * n_embd, f) != n_tokens * n_embd) {
            fprintf(stderr, "cannot write %s\n", path);
            return 1;
        }
        fclose(f);
    }

    llama_pos n_past = 0;
    if (mtmd_helper_eval_chunks(mctx, ctx, chunks, 0, 0, (int32_t) cparams.n_batch, true, &n_past) != 0) {
        fprintf(stderr, "mtmd_helper_eval_chunks failed\n");
        return 1;
    }
    printf("n_past: %d\n", (int) n_past);

    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    struct llama_sampler * sampler = llama_sampler_init_greedy();
    printf("generated:");
    for (int i = 0; i < n_predict; i++) {
        llama_token token = llama_sampler_sample(sampler, ctx, -1);
        if (llama_vocab_is_eog(vocab, token)) break;
        printf(" %d", token);
        struct llama_batch batch = llama_batch_get_one(&token, 1);
        if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
    }
    printf("\n");

    llama_sampler_free(sampler);
    mtmd_input_chunks_free(chunks);
    for (int i = 0; i < n_media; i++) mtmd_bitmap_free(bitmaps[i]);
    free(bitmaps);
    mtmd_free(mctx);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
