// llamaeval: perplexity of a GGUF model computed by llama.cpp itself, the way gpuquant's
// `eval --method llamacpp` defines it, so the two can be compared number for number.
//
//   llamaeval MODEL.gguf TEXTFILE [--max-length N] [--max-tokens M] [--threads T]
//
// Build with scripts/llama/build.sh (it runs fetch.sh first). Prints one JSON object:
//   {"ids": [...], "tokens_scored": N, "nll_sum": x, "nll_mean": x, "perplexity": x,
//    "windows": W, "n_vocab": V, "max_length": L}
// "ids" is the whole text's tokenization (before --max-tokens), to compare with
// `gpuquant tokenize --json`. --max-length defaults to the model's context; --threads to the
// CPUs online. Everything else is llama.cpp's default (F16 KV cache, flash attention "auto",
// which the CPU backend turns on), as llama-perplexity would run it.
//
// Method: CRLF -> LF (as gpuquant reads text), tokenize with add_special=false,
// parse_special=false, keep the first M tokens; windows [b, b+L) for b = 0, L, 2L, ... while
// b+L <= n, each decoded from an empty KV cache; the logits at window positions L/2 .. L-2
// predict the next token; NLL = logsumexp - logit in double, summed in double.
//
// Logging: errors only on stderr; LLAMAEVAL_LOG=1 for all of llama.cpp's log.
//
// Backends: ggml_backend_load_all_from_path on $LLAMA_LIB_DIR, else on the folder holding the
// loaded libggml (found with dladdr), so the rpath build finds its CPU variants with no setup.
//
// The npm package ships no headers, so the few declarations needed are written here from
// llama.h / ggml.h. llama_batch is declared exactly (its layout has not changed in years and
// llama_batch_get_one's code in this build writes exactly those 7 fields). The params structs
// are only ever returned and passed by value, so they are declared as 8-byte-aligned blobs
// bigger than the real ones (160 and 80 bytes in this build, read off the disassembly of
// llama_*_default_params): on SysV x86-64 any struct over 16 bytes is returned through a
// caller-provided buffer and passed as a copy on the stack, and each is the only stack argument
// of its call, so the callee reads exactly its own prefix of our bigger blob. The only fields we
// write (n_ctx, n_batch, n_ubatch) are checked against their known defaults first.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// ---- declarations (from llama.h / ggml.h of the matching release) ----

struct llama_model;
struct llama_context;
struct llama_vocab;
typedef struct llama_memory_i *llama_memory_t;
typedef int32_t llama_token;
typedef int32_t llama_pos;
typedef int32_t llama_seq_id;

struct llama_batch {
	int32_t n_tokens;
	llama_token *token;
	float *embd;
	llama_pos *pos;
	int32_t *n_seq_id;
	llama_seq_id **seq_id;
	int8_t *logits;
};

// Opaque, larger than the library's structs (see the header comment for why that is safe).
struct llama_model_params {
	uint64_t blob[64];
};
struct llama_context_params {
	uint64_t blob[64];
};
// 64 bytes in this build: nthread at 0, ftype at 4 (default 7, LLAMA_FTYPE_MOSTLY_Q8_0), read off
// llama_model_quantize_default_params' code.
struct llama_model_quantize_params {
	uint64_t blob[64];
};

enum { LOG_LEVEL_ERROR = 4, LOG_LEVEL_CONT = 5 };
typedef void (*ggml_log_callback)(int level, const char *text, void *user_data);

void ggml_backend_load_all_from_path(const char *dir_path);
void llama_log_set(ggml_log_callback cb, void *user_data);
void llama_backend_init(void);
void llama_backend_free(void);
struct llama_model_params llama_model_default_params(void);
struct llama_context_params llama_context_default_params(void);
struct llama_model *llama_model_load_from_file(const char *path, struct llama_model_params params);
void llama_model_free(struct llama_model *model);
const struct llama_vocab *llama_model_get_vocab(const struct llama_model *model);
int32_t llama_model_n_ctx_train(const struct llama_model *model);
struct llama_context *llama_init_from_model(struct llama_model *model, struct llama_context_params params);
void llama_free(struct llama_context *ctx);
void llama_set_n_threads(struct llama_context *ctx, int32_t n_threads, int32_t n_threads_batch);
int32_t llama_vocab_n_tokens(const struct llama_vocab *vocab);
int32_t llama_tokenize(const struct llama_vocab *vocab, const char *text, int32_t text_len,
                       llama_token *tokens, int32_t n_tokens_max, bool add_special, bool parse_special);
struct llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max);
void llama_batch_free(struct llama_batch batch);
int32_t llama_decode(struct llama_context *ctx, struct llama_batch batch);
float *llama_get_logits_ith(struct llama_context *ctx, int32_t i);
llama_memory_t llama_get_memory(const struct llama_context *ctx);
void llama_memory_clear(llama_memory_t mem, bool data);
struct llama_model_quantize_params llama_model_quantize_default_params(void);
uint32_t llama_model_quantize(const char *fname_inp, const char *fname_out, const struct llama_model_quantize_params *params);

// ---- helpers ----

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("llamaeval: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void usage(void) {
	fputs("usage: llamaeval MODEL.gguf TEXTFILE [--max-length N] [--max-tokens M] [--threads T]\n"
	      "       llamaeval --quantize q8_0|q4_0 IN.gguf OUT.gguf\n"
	      "       llamaeval --bench MODEL.gguf PROMPT_TOKENS NEW_TOKENS REPEAT THREADS\n", stderr);
	exit(2);
}

// quantize writes IN as OUT with llama.cpp's own quantizer (llama-quantize's library call), so
// that our GGUF reader can be checked on files llama.cpp made.
static int quantize(const char *type, const char *in, const char *out) {
	int32_t ftype;
	if (!strcmp(type, "q8_0"))
		ftype = 7; // LLAMA_FTYPE_MOSTLY_Q8_0
	else if (!strcmp(type, "q4_0"))
		ftype = 2; // LLAMA_FTYPE_MOSTLY_Q4_0
	else
		die("--quantize %s: want q8_0 or q4_0", type);
	struct llama_model_quantize_params p = llama_model_quantize_default_params();
	int32_t *fields = (int32_t *)p.blob;
	if (fields[1] != 7)
		die("llama_model_quantize_params: ftype default %d at offset 4, expected 7: a different layout", fields[1]);
	fields[1] = ftype;
	if (llama_model_quantize(in, out, &p) != 0)
		die("llama_model_quantize %s -> %s failed", in, out);
	return 0;
}

// Errors only: llama.cpp logs every load step at INFO, which would bury our one line of JSON.
// CONT lines continue the previous message, so they follow its level.
// LLAMAEVAL_LOG=1 shows everything, to see what llama.cpp chose (KV types, backend, threads).
static int last_level, log_all;
static void log_errors(int level, const char *text, void *user_data) {
	(void)user_data;
	if (level != LOG_LEVEL_CONT)
		last_level = level;
	if (log_all || last_level == LOG_LEVEL_ERROR)
		fputs(text, stderr);
}

static long parse_pos(const char *flag, const char *s) {
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v <= 0 || v > INT32_MAX)
		die("%s wants a positive integer, got '%s'", flag, s);
	return v;
}

// Reads the file whole and turns every CRLF into LF, exactly as gpuquant's ReadText does
// (a lone CR stays).
static char *read_text(const char *path, size_t *len) {
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot open %s: %s", path, strerror(errno));
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (n == cap && !(buf = realloc(buf, cap *= 2)))
			die("out of memory reading %s", path);
		size_t r = fread(buf + n, 1, cap - n, f);
		if (r == 0)
			break;
		n += r;
	}
	if (ferror(f))
		die("cannot read %s", path);
	fclose(f);
	if (n == 0)
		die("%s is empty", path);
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\r' && i + 1 < n && buf[i + 1] == '\n')
			continue;
		buf[w++] = buf[i];
	}
	*len = w;
	return buf;
}

static const char *lib_dir(void) {
	const char *env = getenv("LLAMA_LIB_DIR");
	if (env && *env)
		return env;
	Dl_info info;
	if (!dladdr((void *)ggml_backend_load_all_from_path, &info) || !info.dli_fname)
		die("cannot locate libggml; set LLAMA_LIB_DIR to the folder with libggml-cpu-*.so");
	char *dir = strdup(info.dli_fname);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return ".";
	*slash = 0;
	return dir;
}

// n_ctx, n_batch and n_ubatch open the struct in every release (offsets 0, 4, 8). A window is
// decoded as one batch and one ubatch, so all three are the window length (llama.cpp rounds
// n_ctx up to a multiple of 256). The defaults are checked first so that a build with another
// layout fails loudly rather than having some other field overwritten.
static void set_ctx_params(struct llama_context_params *p, uint32_t n_ctx) {
	uint32_t *u = (uint32_t *)p->blob;
	if (u[0] != 512 || u[1] != 2048 || u[2] != 512)
		die("llama_context_params layout differs from the expected build (n_ctx/n_batch/n_ubatch defaults %u/%u/%u, want 512/2048/512)",
		    u[0], u[1], u[2]);
	u[0] = u[1] = u[2] = n_ctx;
}

// NLL of target under logits, log-softmax in double from the float logits.
static double nll(const float *logits, int n_vocab, llama_token target) {
	double mx = logits[0];
	for (int i = 1; i < n_vocab; i++)
		if (logits[i] > mx)
			mx = logits[i];
	double sum = 0;
	for (int i = 0; i < n_vocab; i++)
		sum += exp((double)logits[i] - mx);
	return mx + log(sum) - (double)logits[target];
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n) {
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// bench times what `gpuquant bench` times, with llama.cpp: a prompt of P seeded pseudo-random
// token ids decoded as one batch (prefill), then N greedy KV-cached steps of one token (decode),
// REPEAT timed runs after one warm-up, each from an empty cache; medians of the tokens/s.
static int bench(const char *path, long P, long N, long repeat, long threads) {
	struct llama_model *model = llama_model_load_from_file(path, llama_model_default_params());
	if (!model)
		die("cannot load model %s", path);
	int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
	if (P + N > llama_model_n_ctx_train(model))
		die("%ld + %ld tokens exceed the model's context (%d)", P, N, llama_model_n_ctx_train(model));
	struct llama_context_params cp = llama_context_default_params();
	set_ctx_params(&cp, (uint32_t)(P + N));
	struct llama_context *ctx = llama_init_from_model(model, cp);
	if (!ctx)
		die("cannot create a context of %ld tokens", P + N);
	llama_set_n_threads(ctx, (int32_t)threads, (int32_t)threads);
	struct llama_batch batch = llama_batch_init((int32_t)P, 0, 1);
	double *pre = calloc((size_t)repeat, sizeof *pre), *dec = calloc((size_t)repeat, sizeof *dec);
	uint64_t seed = 1;
	for (long r = -1; r < repeat; r++) {
		llama_memory_clear(llama_get_memory(ctx), true);
		batch.n_tokens = (int32_t)P;
		for (int i = 0; i < P; i++) {
			seed = seed * 6364136223846793005u + 1442695040888963407u;
			batch.token[i] = (llama_token)((seed >> 33) % (uint64_t)n_vocab);
			batch.pos[i] = i;
			batch.n_seq_id[i] = 1;
			batch.seq_id[i][0] = 0;
			batch.logits[i] = i == P - 1;
		}
		double t0 = now();
		if (llama_decode(ctx, batch) != 0)
			die("llama_decode failed on the prompt");
		double t1 = now();
		const float *lg = llama_get_logits_ith(ctx, (int32_t)P - 1);
		for (long k = 0; k < N; k++) {
			int best = 0;
			for (int i = 1; i < n_vocab; i++)
				if (lg[i] > lg[best])
					best = i;
			batch.n_tokens = 1;
			batch.token[0] = best;
			batch.pos[0] = (llama_pos)(P + k);
			batch.logits[0] = 1;
			if (llama_decode(ctx, batch) != 0)
				die("llama_decode failed at step %ld", k);
			lg = llama_get_logits_ith(ctx, 0);
		}
		double t2 = now();
		if (r >= 0) {
			pre[r] = (double)P / (t1 - t0);
			dec[r] = N ? (double)N / (t2 - t1) : 0;
		}
	}
	printf("{\"engine\": \"llama.cpp\", \"prompt_tokens\": %ld, \"new_tokens\": %ld, \"repeat\": %ld, \"threads\": %ld, "
	       "\"prefill_tokens_per_s\": %.6g, \"decode_tokens_per_s\": %.6g}\n",
	       P, N, repeat, threads, median(pre, (int)repeat), median(dec, (int)repeat));
	llama_batch_free(batch);
	llama_free(ctx);
	llama_model_free(model);
	free(pre);
	free(dec);
	return 0;
}

int main(int argc, char **argv) {
	if (argc == 7 && !strcmp(argv[1], "--bench")) {
		llama_log_set(log_errors, NULL);
		ggml_backend_load_all_from_path(lib_dir());
		llama_backend_init();
		return bench(argv[2], parse_pos("prompt tokens", argv[3]), atol(argv[4]), parse_pos("repeat", argv[5]), parse_pos("threads", argv[6]));
	}
	if (argc > 1 && !strcmp(argv[1], "--quantize")) {
		if (argc != 5)
			usage();
		log_all = getenv("LLAMAEVAL_LOG") && strcmp(getenv("LLAMAEVAL_LOG"), "0");
		llama_log_set(log_errors, NULL);
		ggml_backend_load_all_from_path(lib_dir());
		llama_backend_init();
		return quantize(argv[2], argv[3], argv[4]);
	}
	const char *model_path = NULL, *text_path = NULL;
	long max_length = 0, max_tokens = 0, threads = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] == '-' && a[1] == '-') {
			if (i + 1 >= argc)
				die("%s needs a value", a);
			const char *v = argv[++i];
			if (!strcmp(a, "--max-length"))
				max_length = parse_pos(a, v);
			else if (!strcmp(a, "--max-tokens"))
				max_tokens = parse_pos(a, v);
			else if (!strcmp(a, "--threads"))
				threads = parse_pos(a, v);
			else {
				fprintf(stderr, "llamaeval: unknown flag %s\n", a);
				usage();
			}
		} else if (!model_path)
			model_path = a;
		else if (!text_path)
			text_path = a;
		else {
			fprintf(stderr, "llamaeval: stray argument %s\n", a);
			usage();
		}
	}
	if (!model_path || !text_path)
		usage();
	if (threads == 0)
		threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;

	size_t text_len;
	char *text = read_text(text_path, &text_len);
	if (text_len > INT32_MAX)
		die("%s is too big for llama_tokenize (over 2 GiB)", text_path);

	log_all = getenv("LLAMAEVAL_LOG") && strcmp(getenv("LLAMAEVAL_LOG"), "0");
	llama_log_set(log_errors, NULL);
	ggml_backend_load_all_from_path(lib_dir());
	llama_backend_init();

	struct llama_model *model = llama_model_load_from_file(model_path, llama_model_default_params());
	if (!model)
		die("cannot load model %s", model_path);
	const struct llama_vocab *vocab = llama_model_get_vocab(model);
	int n_vocab = llama_vocab_n_tokens(vocab);
	int n_ctx_train = llama_model_n_ctx_train(model);
	if (max_length == 0)
		max_length = n_ctx_train;
	if (max_length < 2 || max_length > n_ctx_train)
		die("--max-length %ld must be between 2 and the model's context (%d)", max_length, n_ctx_train);

	// One token per byte is a bound for byte-level BPE; retry with the exact count otherwise.
	int32_t cap = (int32_t)text_len + 1;
	llama_token *ids = malloc(sizeof *ids * (size_t)cap);
	int32_t n = llama_tokenize(vocab, text, (int32_t)text_len, ids, cap, false, false);
	if (n < 0 && n != INT32_MIN) {
		cap = -n;
		ids = realloc(ids, sizeof *ids * (size_t)cap);
		n = llama_tokenize(vocab, text, (int32_t)text_len, ids, cap, false, false);
	}
	if (n < 0)
		die("tokenization failed (%d)", n);
	int32_t n_used = (max_tokens && max_tokens < n) ? (int32_t)max_tokens : n;

	struct llama_context_params cp = llama_context_default_params();
	set_ctx_params(&cp, (uint32_t)max_length);
	struct llama_context *ctx = llama_init_from_model(model, cp);
	if (!ctx)
		die("cannot create a context of %ld tokens", max_length);
	llama_set_n_threads(ctx, (int32_t)threads, (int32_t)threads);

	const int L = (int)max_length, first = L / 2, last = L - 2;
	struct llama_batch batch = llama_batch_init(L, 0, 1);
	double nll_sum = 0;
	long scored = 0, windows = 0;
	for (int32_t b = 0; (int64_t)b + L <= n_used; b += L) {
		// A window sees no earlier window: start from an empty cache.
		llama_memory_clear(llama_get_memory(ctx), true);
		batch.n_tokens = L;
		for (int i = 0; i < L; i++) {
			batch.token[i] = ids[b + i];
			batch.pos[i] = i;
			batch.n_seq_id[i] = 1;
			batch.seq_id[i][0] = 0;
			batch.logits[i] = i >= first && i <= last;
		}
		int rc = llama_decode(ctx, batch);
		if (rc != 0)
			die("llama_decode failed (%d) on the window at token %d", rc, b);
		for (int i = first; i <= last; i++) {
			const float *lg = llama_get_logits_ith(ctx, i);
			if (!lg)
				die("no logits for window position %d", i);
			nll_sum += nll(lg, n_vocab, ids[b + i + 1]);
			scored++;
		}
		windows++;
	}
	if (scored == 0)
		die("%d tokens are too few to score with max-length %d", n_used, L);

	double mean = nll_sum / (double)scored;
	printf("{\"ids\": [");
	for (int32_t i = 0; i < n; i++)
		printf(i ? ", %d" : "%d", ids[i]);
	printf("], \"tokens_scored\": %ld, \"nll_sum\": %.17g, \"nll_mean\": %.17g, \"perplexity\": %.17g, "
	       "\"windows\": %ld, \"n_vocab\": %d, \"max_length\": %d}\n",
	       scored, nll_sum, mean, exp(mean), windows, n_vocab, L);

	llama_batch_free(batch);
	llama_free(ctx);
	llama_model_free(model);
	llama_backend_free();
	free(ids);
	free(text);
	return 0;
}
