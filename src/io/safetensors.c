#define _GNU_SOURCE /* qsort_r */
#include "gv/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gv/fileio.h"

/* The format is little-endian; reading F32/I32 straight into memory relies on the host being so too. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

#define GV_ST_FILE_DIMS 8                   /* most dims a file may carry; gv_st_info exposes GV_MAX_DIMS */
#define GV_ST_MAX_HEADER 100000000u         /* the reference implementation's limit */
#define GV_ST_MAX_INT 9007199254740992.0    /* 2^53: JSON numbers beyond it are not exact doubles */
#define GV_ST_CHUNK_ELEMS ((size_t)1 << 18) /* conversion chunk for 16-bit floats */

/* ---- dtypes ---- */

typedef struct {
    const char *name;
    size_t size;
    int gv; /* the gv_dtype , or -1 when gv_dtype cannot express it */
} gv_st_dtype_desc;

static const gv_st_dtype_desc gv_st_dtypes[] = {
    {"F32", 4, GV_F32}, {"BF16", 2, GV_BF16}, {"F16", 2, GV_F16}, {"I32", 4, GV_I32}, {"U16", 2, GV_U16},
    {"I64", 8, GV_I64}, {"F64", 8, -1},       {"I16", 2, -1},     {"I8", 1, -1},      {"U8", 1, -1},
    {"U32", 4, -1},     {"U64", 8, -1},       {"BOOL", 1, -1},    {"F8_E4M3", 1, -1}, {"F8_E5M2", 1, -1},
};
#define GV_ST_NDTYPES ((int)(sizeof gv_st_dtypes / sizeof gv_st_dtypes[0]))

static int gv_st_dtype_index(gv_dtype dt) {
    for (int i = 0; i < GV_ST_NDTYPES; i++)
        if (gv_st_dtypes[i].gv >= 0 && gv_st_dtypes[i].gv == (int)dt) return i;
    return -1;
}

size_t gv_st_dtype_size(gv_dtype dt) {
    int i = gv_st_dtype_index(dt);
    return i < 0 ? 0 : gv_st_dtypes[i].size;
}

const char *gv_st_dtype_name(gv_dtype dt) {
    int i = gv_st_dtype_index(dt);
    return i < 0 ? "?" : gv_st_dtypes[i].name;
}

float gv_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13); /* inf / NaN (payload kept) */
    } else if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise the mantissa */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static char *gv_shape_fmt(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

/* ---- reader ---- */

typedef struct {
    char *name;
    int dtype; /* index into gv_st_dtypes */
    int ndim;
    int64_t shape[GV_ST_FILE_DIMS];
    uint64_t begin, end; /* relative to the data buffer */
} gv_st_entry;

struct gv_st_file {
    char *path;
    int fd;
    uint64_t data_start, buf_size;
    int n;
    gv_st_entry *t;
    int *by_name; /* indices sorted by name, for bsearch */
    int nmeta;
    char **meta_key, **meta_val;
};

const char *gv_st_path(const gv_st_file *f) {
    return f->path;
}
int gv_st_count(const gv_st_file *f) {
    return f->n;
}
const char *gv_st_name(const gv_st_file *f, int i) {
    return i >= 0 && i < f->n ? f->t[i].name : NULL;
}

void gv_st_close(gv_st_file *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_key[i]);
        free(f->meta_val[i]);
    }
    free(f->t);
    free(f->by_name);
    free(f->meta_key);
    free(f->meta_val);
    free(f->path);
    free(f);
}

/* pread until n bytes arrive; a short file is a format error (the header promised those bytes). */
static gv_status gv_st_pread(const gv_st_file *f, void *dst, size_t n, uint64_t off, const char *what) {
    char *p = dst;
    while (n > 0) {
        ssize_t r = pread(f->fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return gv_fail(GV_ERR_IO, "%s: read of %s failed: %s", f->path, what, strerror(errno));
        }
        if (r == 0)
            return gv_fail(GV_ERR_FORMAT,
                           "%s: unexpected end of file reading %s at byte %llu (truncated file?)", f->path,
                           what, (unsigned long long)off);
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return GV_OK;
}

/* A JSON number that is an exact non-negative integer. */
static int gv_json_uint(const cJSON *it, uint64_t *out) {
    if (!cJSON_IsNumber(it)) return 0;
    double d = it->valuedouble;
    if (!(d >= 0 && d <= GV_ST_MAX_INT) || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* qsort_r comparators over tensor indices; ctx is the entry array. */
static int gv_st_cmp_name(const void *a, const void *b, void *ctx) {
    const gv_st_entry *t = ctx;
    return strcmp(t[*(const int *)a].name, t[*(const int *)b].name);
}

static int gv_st_cmp_offset(const void *a, const void *b, void *ctx) {
    const gv_st_entry *t = ctx;
    const gv_st_entry *x = &t[*(const int *)a], *y = &t[*(const int *)b];
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Parses one tensor entry of the header into e. */
static gv_status gv_st_parse_entry(gv_st_file *f, const cJSON *it, gv_st_entry *e) {
    const char *name = it->string;
    if (!cJSON_IsObject(it))
        return gv_fail(GV_ERR_FORMAT, "%s: header entry '%s' is not an object", f->path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt))
        return gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' has no string \"dtype\"", f->path, name);
    e->dtype = -1;
    for (int k = 0; k < GV_ST_NDTYPES; k++)
        if (strcmp(dt->valuestring, gv_st_dtypes[k].name) == 0) e->dtype = k;
    if (e->dtype < 0)
        return gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' has unknown dtype \"%s\"", f->path, name,
                       dt->valuestring);
    if (!cJSON_IsArray(shape))
        return gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' has no \"shape\" array", f->path, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > GV_ST_FILE_DIMS)
        return gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' has %d dims (at most %d supported)", f->path, name, nd,
                       GV_ST_FILE_DIMS);
    e->ndim = nd;
    uint64_t numel = 1;
    int k = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        uint64_t v;
        if (!gv_json_uint(d, &v))
            return gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' shape[%d] is not a non-negative integer", f->path,
                           name, k);
        e->shape[k++] = (int64_t)v;
        if (__builtin_mul_overflow(numel, v, &numel))
            return gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' shape overflows", f->path, name);
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)gv_st_dtypes[e->dtype].size, &nbytes))
        return gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' shape overflows", f->path, name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !gv_json_uint(cJSON_GetArrayItem(offs, 0), &e->begin) ||
        !gv_json_uint(cJSON_GetArrayItem(offs, 1), &e->end))
        return gv_fail(GV_ERR_FORMAT,
                       "%s: tensor '%s' needs \"data_offsets\": [begin, end] of non-negative integers",
                       f->path, name);
    if (e->end < e->begin)
        return gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' data_offsets [%llu, %llu] end before they begin",
                       f->path, name, (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > f->buf_size)
        return gv_fail(
            GV_ERR_FORMAT,
            "%s: tensor '%s' data_offsets [%llu, %llu] exceed the %llu-byte buffer (truncated file?)",
            f->path, name, (unsigned long long)e->begin, (unsigned long long)e->end,
            (unsigned long long)f->buf_size);
    if (e->end - e->begin != nbytes) {
        char sb[160];
        return gv_fail(GV_ERR_FORMAT,
                       "%s: tensor '%s' data_offsets [%llu, %llu] hold %llu bytes but %s %s needs %llu",
                       f->path, name, (unsigned long long)e->begin, (unsigned long long)e->end,
                       (unsigned long long)(e->end - e->begin), gv_st_dtypes[e->dtype].name,
                       gv_shape_fmt(sb, sizeof sb, e->ndim, e->shape), (unsigned long long)nbytes);
    }
    e->name = strdup(name);
    if (!e->name) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", f->path);
    return GV_OK;
}

static gv_status gv_st_parse_meta(gv_st_file *f, const cJSON *m) {
    if (cJSON_IsNull(m)) return GV_OK;
    if (!cJSON_IsObject(m)) return gv_fail(GV_ERR_FORMAT, "%s: \"__metadata__\" is not an object", f->path);
    int n = cJSON_GetArraySize(m);
    f->meta_key = calloc((size_t)n + 1, sizeof(char *));
    f->meta_val = calloc((size_t)n + 1, sizeof(char *));
    if (!f->meta_key || !f->meta_val) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", f->path);
    const cJSON *it;
    cJSON_ArrayForEach(it, m) {
        if (!cJSON_IsString(it))
            return gv_fail(GV_ERR_FORMAT, "%s: __metadata__ value for '%s' is not a string", f->path,
                           it->string);
        f->meta_key[f->nmeta] = strdup(it->string);
        f->meta_val[f->nmeta] = strdup(it->valuestring);
        f->nmeta++;
        if (!f->meta_key[f->nmeta - 1] || !f->meta_val[f->nmeta - 1])
            return gv_fail(GV_ERR_NOMEM, "%s: out of memory", f->path);
    }
    return GV_OK;
}

/* Checks what the reference implementation checks: sorted by offset, the tensors tile the buffer exactly
 * (no overlap, no gap, nothing after the last one), and names are unique. */
static gv_status gv_st_check_layout(gv_st_file *f) {
    int *ord = malloc(sizeof(int) * (size_t)(f->n ? f->n : 1));
    f->by_name = malloc(sizeof(int) * (size_t)(f->n ? f->n : 1));
    if (!ord || !f->by_name) {
        free(ord);
        return gv_fail(GV_ERR_NOMEM, "%s: out of memory", f->path);
    }
    for (int i = 0; i < f->n; i++) ord[i] = f->by_name[i] = i;
    qsort_r(ord, (size_t)f->n, sizeof(int), gv_st_cmp_offset, f->t);
    qsort_r(f->by_name, (size_t)f->n, sizeof(int), gv_st_cmp_name, f->t);
    gv_status st = GV_OK;
    for (int i = 1; i < f->n && st == GV_OK; i++)
        if (strcmp(f->t[f->by_name[i - 1]].name, f->t[f->by_name[i]].name) == 0)
            st = gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", f->path,
                         f->t[f->by_name[i]].name);
    uint64_t pos = 0;
    const gv_st_entry *prev = NULL;
    for (int i = 0; i < f->n && st == GV_OK; i++) {
        const gv_st_entry *e = &f->t[ord[i]];
        if (e->begin < pos)
            st = gv_fail(GV_ERR_FORMAT, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap",
                         f->path, prev->name, (unsigned long long)prev->begin, (unsigned long long)prev->end,
                         e->name, (unsigned long long)e->begin, (unsigned long long)e->end);
        else if (e->begin > pos)
            st = gv_fail(GV_ERR_FORMAT,
                         "%s: %llu unused bytes before tensor '%s' at data_offsets [%llu, %llu]", f->path,
                         (unsigned long long)(e->begin - pos), e->name, (unsigned long long)e->begin,
                         (unsigned long long)e->end);
        pos = e->end;
        prev = e;
    }
    if (st == GV_OK && pos != f->buf_size)
        st = gv_fail(GV_ERR_FORMAT, "%s: %llu trailing bytes after the last tensor (buffer is %llu bytes)",
                     f->path, (unsigned long long)(f->buf_size - pos), (unsigned long long)f->buf_size);
    free(ord);
    return st;
}

static gv_status gv_st_parse_header(gv_st_file *f, const char *hdr, size_t n) {
    size_t s = 0;
    while (s < n && hdr[s] == ' ') s++;
    if (s == n || hdr[s] != '{')
        return gv_fail(GV_ERR_FORMAT, "%s: header does not start with '{' (not a safetensors file?)",
                       f->path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, n, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + n ? (size_t)(end - hdr) : 0;
        char near[24];
        size_t k = 0;
        for (size_t i = at; i < n && k < sizeof near - 1; i++)
            near[k++] = hdr[i] >= 32 && hdr[i] < 127 ? hdr[i] : '?';
        near[k] = '\0';
        return gv_fail(GV_ERR_FORMAT, "%s: header is not valid JSON (error at byte %zu of %zu, near \"%s\")",
                       f->path, at, n, near);
    }
    gv_status st = GV_OK;
    for (const char *p = end; p && p < hdr + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
            st = gv_fail(GV_ERR_FORMAT, "%s: unexpected bytes after the JSON header at byte %zu", f->path,
                         (size_t)(p - hdr));
            break;
        }
    if (st == GV_OK && !cJSON_IsObject(root))
        st = gv_fail(GV_ERR_FORMAT, "%s: header JSON is not an object", f->path);
    if (st == GV_OK) {
        int total = cJSON_GetArraySize(root);
        f->t = calloc((size_t)total + 1, sizeof(gv_st_entry));
        if (!f->t) st = gv_fail(GV_ERR_NOMEM, "%s: out of memory", f->path);
    }
    int seen_meta = 0;
    for (const cJSON *it = st == GV_OK ? root->child : NULL; it && st == GV_OK; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (seen_meta++)
                st = gv_fail(GV_ERR_FORMAT, "%s: \"__metadata__\" appears twice", f->path);
            else
                st = gv_st_parse_meta(f, it);
        } else {
            st = gv_st_parse_entry(f, it, &f->t[f->n]);
            if (st == GV_OK) f->n++;
        }
    }
    cJSON_Delete(root);
    if (st == GV_OK) st = gv_st_check_layout(f);
    return st;
}

gv_status gv_st_open(gv_st_file **out, const char *path) {
    *out = NULL;
    gv_st_file *f = calloc(1, sizeof *f);
    if (!f) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", path);
    f->fd = -1;
    f->path = strdup(path);
    if (!f->path) {
        free(f);
        return gv_fail(GV_ERR_NOMEM, "%s: out of memory", path);
    }
    gv_status st = GV_OK;
    char *hdr = NULL;
    struct stat sb;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0)
        st = gv_fail(GV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    else if (fstat(f->fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        st = gv_fail(GV_ERR_IO, "%s: not a regular file", path);
    uint64_t size = st == GV_OK ? (uint64_t)sb.st_size : 0, hlen = 0;
    if (st == GV_OK && size < 8)
        st = gv_fail(GV_ERR_FORMAT,
                     "%s: file is %llu bytes, too short for the 8-byte header length (truncated file?)", path,
                     (unsigned long long)size);
    if (st == GV_OK) {
        unsigned char b[8];
        st = gv_st_pread(f, b, 8, 0, "the header length");
        for (int i = 7; i >= 0 && st == GV_OK; i--) hlen = hlen << 8 | b[i];
    }
    if (st == GV_OK && hlen > size - 8)
        st = gv_fail(
            GV_ERR_FORMAT,
            "%s: header length %llu exceeds the %llu bytes after it (truncated or not a safetensors file?)",
            path, (unsigned long long)hlen, (unsigned long long)(size - 8));
    if (st == GV_OK && hlen > GV_ST_MAX_HEADER)
        st = gv_fail(GV_ERR_FORMAT,
                     "%s: header length %llu is over the %u-byte limit (not a safetensors file?)", path,
                     (unsigned long long)hlen, GV_ST_MAX_HEADER);
    if (st == GV_OK && hlen < 2)
        st = gv_fail(GV_ERR_FORMAT, "%s: header length %llu is too small for a JSON object", path,
                     (unsigned long long)hlen);
    if (st == GV_OK && !(hdr = malloc((size_t)hlen + 1)))
        st = gv_fail(GV_ERR_NOMEM, "%s: out of memory", path);
    if (st == GV_OK) st = gv_st_pread(f, hdr, (size_t)hlen, 8, "the header");
    if (st == GV_OK) {
        hdr[hlen] = '\0';
        f->data_start = 8 + hlen;
        f->buf_size = size - 8 - hlen;
        st = gv_st_parse_header(f, hdr, (size_t)hlen);
    }
    free(hdr);
    if (st != GV_OK) {
        gv_st_close(f);
        return st;
    }
    *out = f;
    return GV_OK;
}

int gv_st_find(const gv_st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, i = f->by_name[mid];
        int c = strcmp(name, f->t[i].name);
        if (c == 0) return i;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

static uint64_t gv_st_numel(const gv_st_entry *e) {
    uint64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= (uint64_t)e->shape[i];
    return n;
}

size_t gv_st_nbytes(const gv_st_file *f, int i) {
    return i >= 0 && i < f->n ? (size_t)(f->t[i].end - f->t[i].begin) : 0;
}

gv_status gv_st_info(const gv_st_file *f, int i, gv_dtype *dt, int *ndim, int64_t shape[4]) {
    if (i < 0 || i >= f->n)
        return gv_fail(GV_ERR_INVALID, "%s: tensor index %d out of range (file has %d)", f->path, i, f->n);
    const gv_st_entry *e = &f->t[i];
    if (gv_st_dtypes[e->dtype].gv < 0)
        return gv_fail(GV_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which gv_dtype cannot express",
                       f->path, e->name, gv_st_dtypes[e->dtype].name);
    if (e->ndim > GV_MAX_DIMS)
        return gv_fail(GV_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dims (at most %d supported)", f->path,
                       e->name, e->ndim, GV_MAX_DIMS);
    if (dt) *dt = (gv_dtype)gv_st_dtypes[e->dtype].gv;
    if (ndim) *ndim = e->ndim;
    if (shape)
        for (int k = 0; k < GV_MAX_DIMS; k++) shape[k] = k < e->ndim ? e->shape[k] : 1;
    return GV_OK;
}

const char *gv_st_meta(const gv_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_key[i], key) == 0) return f->meta_val[i];
    return NULL;
}

static gv_status gv_st_lookup(const gv_st_file *f, const char *name, const gv_st_entry **e) {
    int i = gv_st_find(f, name);
    if (i < 0)
        return gv_fail(GV_ERR_INVALID, "%s: no tensor '%s' (file has %d tensors)", f->path, name, f->n);
    *e = &f->t[i];
    return GV_OK;
}

/* Reads `count` elements starting at element `first` of a float tensor and widens them to f32. */
static gv_status gv_st_read_floats(gv_st_file *f, const gv_st_entry *e, uint64_t first, uint64_t count,
                                   float *dst) {
    const gv_st_dtype_desc *d = &gv_st_dtypes[e->dtype];
    char what[300];
    snprintf(what, sizeof what, "tensor '%s'", e->name);
    uint64_t off = f->data_start + e->begin + first * d->size;
    if (d->gv == GV_F32) return gv_st_pread(f, dst, (size_t)(count * 4), off, what);
    if (d->gv != GV_BF16 && d->gv != GV_F16)
        return gv_fail(GV_ERR_INVALID, "%s: tensor '%s' is %s, not a float dtype (F32, BF16, F16)", f->path,
                       e->name, d->name);
    size_t chunk = count < GV_ST_CHUNK_ELEMS ? (size_t)count : GV_ST_CHUNK_ELEMS;
    uint16_t *buf = malloc((chunk ? chunk : 1) * sizeof(uint16_t));
    if (!buf) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", f->path);
    gv_status st = GV_OK;
    for (uint64_t done = 0; done < count && st == GV_OK;) {
        size_t m = count - done < chunk ? (size_t)(count - done) : chunk;
        st = gv_st_pread(f, buf, m * 2, off + done * 2, what);
        if (st != GV_OK) break;
        if (d->gv == GV_BF16)
            for (size_t k = 0; k < m; k++) dst[done + k] = gv_bf16_to_f32(buf[k]);
        else
            for (size_t k = 0; k < m; k++) dst[done + k] = gv_f16_to_f32(buf[k]);
        done += m;
    }
    free(buf);
    return st;
}

gv_status gv_st_read_f32(gv_st_file *f, const char *name, float *dst, int ndim, const int64_t *expect_shape) {
    const gv_st_entry *e = NULL;
    GV_TRY(gv_st_lookup(f, name, &e));
    if (expect_shape) {
        int same = ndim == e->ndim;
        for (int k = 0; same && k < ndim; k++) same = expect_shape[k] == e->shape[k];
        if (!same) {
            char a[160], b[160];
            return gv_fail(GV_ERR_INVALID, "%s: tensor '%s' has shape %s, expected %s", f->path, name,
                           gv_shape_fmt(a, sizeof a, e->ndim, e->shape),
                           gv_shape_fmt(b, sizeof b, ndim < 0 ? 0 : ndim, expect_shape));
        }
    }
    return gv_st_read_floats(f, e, 0, gv_st_numel(e), dst);
}

gv_status gv_st_read_f32_rows(gv_st_file *f, const char *name, int64_t row0, int64_t nrows, float *dst) {
    const gv_st_entry *e = NULL;
    GV_TRY(gv_st_lookup(f, name, &e));
    if (e->ndim < 1)
        return gv_fail(GV_ERR_INVALID, "%s: tensor '%s' is a scalar, it has no rows", f->path, name);
    if (row0 < 0 || nrows < 0 || row0 > e->shape[0] - nrows)
        return gv_fail(GV_ERR_INVALID, "%s: rows [%lld, %lld) of tensor '%s' are outside its %lld rows",
                       f->path, (long long)row0, (long long)(row0 + nrows), name, (long long)e->shape[0]);
    uint64_t row = 1;
    for (int k = 1; k < e->ndim; k++) row *= (uint64_t)e->shape[k];
    return gv_st_read_floats(f, e, (uint64_t)row0 * row, (uint64_t)nrows * row, dst);
}

gv_status gv_st_read_raw(gv_st_file *f, const char *name, void *dst, size_t bytes) {
    const gv_st_entry *e = NULL;
    GV_TRY(gv_st_lookup(f, name, &e));
    if (bytes != e->end - e->begin)
        return gv_fail(GV_ERR_INVALID, "%s: tensor '%s' is %llu bytes, caller asked for %zu", f->path, name,
                       (unsigned long long)(e->end - e->begin), bytes);
    char what[300];
    snprintf(what, sizeof what, "tensor '%s'", e->name);
    return gv_st_pread(f, dst, bytes, f->data_start + e->begin, what);
}

/* ---- writer ---- */

typedef struct {
    char *name;
    gv_dtype dt;
    int ndim;
    int64_t shape[GV_MAX_DIMS];
    const void *data;
    uint64_t nbytes;
    gv_st_produce_fn produce; /* lazy tensor: produce(ctx, dst) fills its bytes at save time */
    void *ctx;
} gv_st_wentry;

struct gv_st_writer {
    gv_st_wentry *t;
    int n, cap;
    char **meta_key, **meta_val;
    int nmeta, meta_cap;
    int adding_lazy;
};

gv_status gv_st_writer_init(gv_st_writer **w) {
    *w = calloc(1, sizeof **w);
    return *w ? GV_OK : gv_fail(GV_ERR_NOMEM, "safetensors writer: out of memory");
}

void gv_st_writer_free(gv_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->meta_key[i]);
        free(w->meta_val[i]);
    }
    free(w->t);
    free(w->meta_key);
    free(w->meta_val);
    free(w);
}

gv_status gv_st_writer_add(gv_st_writer *w, const char *name, gv_dtype dt, int ndim, const int64_t *shape,
                           const void *data) {
    if (!name || !*name) return gv_fail(GV_ERR_INVALID, "safetensors writer: empty tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return gv_fail(GV_ERR_INVALID, "safetensors writer: '__metadata__' is reserved, not a tensor name");
    size_t esize = gv_st_dtype_size(dt);
    if (!esize)
        return gv_fail(GV_ERR_INVALID, "safetensors writer: tensor '%s' has unsupported dtype %d", name,
                       (int)dt);
    if (ndim < 0 || ndim > GV_MAX_DIMS || (ndim > 0 && !shape))
        return gv_fail(GV_ERR_INVALID, "safetensors writer: tensor '%s' has %d dims (0..%d allowed)", name,
                       ndim, GV_MAX_DIMS);
    uint64_t numel = 1;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] < 0 || __builtin_mul_overflow(numel, (uint64_t)shape[k], &numel))
            return gv_fail(GV_ERR_INVALID, "safetensors writer: tensor '%s' has a bad shape", name);
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)esize, &nbytes))
        return gv_fail(GV_ERR_INVALID, "safetensors writer: tensor '%s' is too large", name);
    if (nbytes && !data && !w->adding_lazy)
        return gv_fail(GV_ERR_INVALID, "safetensors writer: tensor '%s' has no data", name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return gv_fail(GV_ERR_INVALID, "safetensors writer: tensor '%s' added twice", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        gv_st_wentry *t = realloc(w->t, sizeof *t * (size_t)cap);
        if (!t) return gv_fail(GV_ERR_NOMEM, "safetensors writer: out of memory");
        w->t = t;
        w->cap = cap;
    }
    gv_st_wentry *e = &w->t[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return gv_fail(GV_ERR_NOMEM, "safetensors writer: out of memory");
    e->dt = dt;
    e->ndim = ndim;
    for (int k = 0; k < ndim; k++) e->shape[k] = shape[k];
    e->data = data;
    e->nbytes = nbytes;
    w->n++;
    return GV_OK;
}

gv_status gv_st_writer_add_fn(gv_st_writer *w, const char *name, gv_dtype dt, int ndim, const int64_t *shape,
                              gv_st_produce_fn produce, void *ctx) {
    if (!produce) return gv_fail(GV_ERR_INVALID, "safetensors writer: tensor '%s' has no producer", name);
    w->adding_lazy = 1;
    gv_status st = gv_st_writer_add(w, name, dt, ndim, shape, NULL);
    w->adding_lazy = 0;
    if (st != GV_OK) return st;
    w->t[w->n - 1].produce = produce;
    w->t[w->n - 1].ctx = ctx;
    return GV_OK;
}

gv_status gv_st_writer_meta(gv_st_writer *w, const char *key, const char *value) {
    if (!key || !value) return gv_fail(GV_ERR_INVALID, "safetensors writer: NULL metadata key or value");
    char *v = strdup(value);
    if (!v) return gv_fail(GV_ERR_NOMEM, "safetensors writer: out of memory");
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta_key[i], key) == 0) {
            free(w->meta_val[i]);
            w->meta_val[i] = v;
            return GV_OK;
        }
    if (w->nmeta == w->meta_cap) {
        int cap = w->meta_cap ? 2 * w->meta_cap : 8;
        char **k = realloc(w->meta_key, sizeof(char *) * (size_t)cap);
        if (k) w->meta_key = k;
        char **vv = k ? realloc(w->meta_val, sizeof(char *) * (size_t)cap) : NULL;
        if (!vv) {
            free(v);
            return gv_fail(GV_ERR_NOMEM, "safetensors writer: out of memory");
        }
        w->meta_val = vv;
        w->meta_cap = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return gv_fail(GV_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->meta_key[w->nmeta] = k;
    w->meta_val[w->nmeta] = v;
    w->nmeta++;
    return GV_OK;
}

/* Integers go in as raw JSON text so they print exactly, never in exponent form. */
static cJSON *gv_json_int(uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return cJSON_CreateRaw(buf);
}

static char *gv_st_header_json(const gv_st_writer *w) {
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && w->nmeta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < w->nmeta; i++)
            ok = cJSON_AddStringToObject(m, w->meta_key[i], w->meta_val[i]) != NULL;
    }
    uint64_t off = 0;
    for (int i = 0; ok && i < w->n; i++) {
        const gv_st_wentry *e = &w->t[i];
        cJSON *o = cJSON_AddObjectToObject(root, e->name);
        cJSON *shape = o ? cJSON_AddArrayToObject(o, "shape") : NULL;
        cJSON *offs = shape ? cJSON_AddArrayToObject(o, "data_offsets") : NULL;
        ok = offs && cJSON_AddStringToObject(o, "dtype", gv_st_dtype_name(e->dt));
        for (int k = 0; ok && k < e->ndim; k++)
            ok = cJSON_AddItemToArray(shape, gv_json_int((uint64_t)e->shape[k]));
        ok = ok && cJSON_AddItemToArray(offs, gv_json_int(off)) &&
             cJSON_AddItemToArray(offs, gv_json_int(off + e->nbytes));
        off += e->nbytes;
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

typedef struct {
    const gv_st_writer *w;
    const char *json;
    size_t json_len, padded;
} gv_st_save_ctx;

static gv_status gv_st_fill(FILE *f, const char *tmp, void *vctx) {
    const gv_st_save_ctx *c = vctx;
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)c->padded >> (8 * i));
    GV_TRY(gv_file_fwrite(f, len, 8, tmp));
    GV_TRY(gv_file_fwrite(f, c->json, c->json_len, tmp));
    static const char spaces[8] = "        ";
    GV_TRY(gv_file_fwrite(f, spaces, c->padded - c->json_len, tmp));
    /* Lazy tensors are produced one at a time into one buffer, so a file can be larger than memory. */
    uint64_t lazy_max = 0;
    for (int i = 0; i < c->w->n; i++)
        if (c->w->t[i].produce && c->w->t[i].nbytes > lazy_max) lazy_max = c->w->t[i].nbytes;
    void *buf = lazy_max ? malloc((size_t)lazy_max) : NULL;
    if (lazy_max && !buf)
        return gv_fail(GV_ERR_NOMEM, "%s: out of memory for a %llu-byte tensor", tmp,
                       (unsigned long long)lazy_max);
    gv_status st = GV_OK;
    for (int i = 0; i < c->w->n && st == GV_OK; i++) {
        const gv_st_wentry *e = &c->w->t[i];
        const void *data = e->data;
        if (e->produce) {
            st = e->produce(e->ctx, buf);
            data = buf;
        }
        if (st == GV_OK) st = gv_file_fwrite(f, data, (size_t)e->nbytes, tmp);
    }
    free(buf);
    return st;
}

gv_status gv_st_writer_save(gv_st_writer *w, const char *path) {
    char *json = gv_st_header_json(w);
    if (!json) return gv_fail(GV_ERR_NOMEM, "%s: cannot build the safetensors header", path);
    gv_st_save_ctx c = {w, json, strlen(json), 0};
    c.padded = (c.json_len + 7) & ~(size_t)7; /* keeps the buffer 8-byte aligned, as the reference does */
    gv_status st = gv_file_write_atomic_fn(path, gv_st_fill, &c);
    free(json);
    return st;
}

gv_status gv_st_diff(const char *a, const char *b, double *global, double *worst, char *worst_name) {
    gv_st_file *fa = NULL, *fb = NULL;
    *global = *worst = INFINITY;
    GV_TRY(gv_st_open(&fa, a));
    gv_status st = gv_st_open(&fb, b);
    double dd = 0, yy = 0, w = 0;
    if (st == GV_OK && gv_st_count(fa) != gv_st_count(fb))
        st = gv_fail(GV_ERR_FORMAT, "%s has %d tensors, %s has %d", a, gv_st_count(fa), b, gv_st_count(fb));
    for (int i = 0; st == GV_OK && i < gv_st_count(fa); i++) {
        const char *name = gv_st_name(fa, i);
        int j = gv_st_find(fb, name);
        if (j < 0 || gv_st_nbytes(fb, j) != gv_st_nbytes(fa, i)) {
            st = gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' %s", b, name,
                         j < 0 ? "is missing" : "has another size");
            break;
        }
        size_t n = gv_st_nbytes(fa, i) / 4;
        float *x = malloc(n * 4), *y = malloc(n * 4);
        st = x && y ? GV_OK : gv_fail(GV_ERR_NOMEM, "diff: out of host memory");
        if (st == GV_OK) st = gv_st_read_f32(fa, name, x, 0, NULL);
        if (st == GV_OK) st = gv_st_read_f32(fb, name, y, 0, NULL);
        double d = 0, t = 0;
        for (size_t k = 0; st == GV_OK && k < n; k++) {
            d += (double)(x[k] - y[k]) * (x[k] - y[k]);
            t += (double)y[k] * y[k];
        }
        dd += d;
        yy += t;
        if (st == GV_OK && t > 0 && sqrt(d / t) > w) {
            w = sqrt(d / t);
            if (worst_name) snprintf(worst_name, 96, "%s", name);
        }
        free(x);
        free(y);
    }
    gv_st_close(fa);
    gv_st_close(fb);
    GV_TRY(st);
    *global = yy > 0 ? sqrt(dd / yy) : sqrt(dd);
    *worst = w;
    return GV_OK;
}
