/* `galvatron search`: reads Hetu-Galvatron profile files and search options, runs the plan search and
 * prints the report (predicted step time, throughput, memory per stage by category, the next best
 * alternatives); writes the plan in the project's form (-o) and as galvatron_config (--galvatron-out). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gv/cost.h"
#include "gv/fileio.h"
#include "gv/model.h"
#include "gv/plan.h"
#include "gv/search.h"

static const char *gv_usage_search =
    "usage: galvatron search --model M -n W --memory GIB --profile-dir DIR [options]\n"
    "\n"
    "Finds the fastest layer-wise hybrid-parallel plan that fits in GIB GiB per rank, from Hetu-Galvatron's\n"
    "profile files in DIR (allreduce_bandwidth_*, p2p_bandwidth_*, overlap_coefficient.json, sp_time_*,\n"
    "computation_profiling_*, memory_profiling_*).\n"
    "\n"
    "  --model PRESET|FILE      model (shape: hidden size, layers, sequence length) [gpt2-tiny]\n"
    "  --layers N               override the model's number of layers\n"
    "  --seq T                  sequence length [seq_length, else the model's max_seq]\n"
    "  -n W                     ranks (a power of two)\n"
    "  --memory GIB             memory per rank in GiB (Galvatron's memory_constraint)\n"
    "  --profile-dir DIR        where the profile files are\n"
    "  --cost-model own|galvatron\n"
    "                           own: the project's cost model (all Ulysses/SP collectives, ZeRO-3 gathers,\n"
    "                           optimizer step, uneven stages); galvatron: Hetu-Galvatron HEAD's formulas "
    "and\n"
    "                           search, quirks included, to reproduce its plans [own]\n"
    "  --options FILE.json      a flat JSON object of Galvatron search options under their own names\n"
    "                           (num_nodes, num_gpus_per_node, memory_constraint, settle_bsz, settle_chunk,\n"
    "                           min_bsz, max_bsz, bsz_scale, fine_grained_mode, default_dp_type,\n"
    "                           pipeline_type, async_grad_reduce, sequence_parallel, global_memory_buffer,\n"
    "                           mixed_precision, time_profile_mode, memory_profile_mode, disable_*,\n"
    "                           max_*_deg, seq_length, hidden_size, num_layers, model_name, ...; and\n"
    "                           the own model's overlap_grad_sync, overlap (the runtime's --overlap: ZeRO-3\n"
    "                           holds a second layer slot), uneven_stages, context_mb)\n"
    "  --global-batch B         search this global batch only (settle_bsz)\n"
    "  --micro-batches M        and this many micro-batches (settle_chunk)\n"
    "  --threads N              search threads [one per CPU]\n"
    "  -o PLAN.json             write the plan in the project's form\n"
    "  --galvatron-out FILE     write it as Hetu-Galvatron's galvatron_config, with a 'throughput' field\n"
    "                           (with --cost-model galvatron and no --galvatron-out: Galvatron's own\n"
    "                           file name in the current directory)\n"
    "\n"
    "example:\n"
    "  galvatron search --model llama2-7b -n 8 --memory 36 --profile-dir profiles --cost-model galvatron \\\n"
    "      --options search.json --galvatron-out galvatron_config.json\n";

typedef struct {
    int num_nodes, gpus_per_node;
    double memory_gb;
    int seq, hidden, layers;
    char model_name[128];
    gv_profile_mode time_mode, mem_mode;
} gv_search_cli;

static int gv_bad(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "galvatron search: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 1;
}

/* Reads the options file into the search options, cost options and CLI settings. Returns 0 or prints
 * "FILE: field 'key': ..." and returns 1. */
static int gv_read_options(const char *path, gv_search_opts *so, gv_cost_opts *co, gv_search_cli *cli) {
    char *txt;
    size_t n;
    if (gv_file_read_all(path, &txt, &n) != GV_OK) {
        fprintf(stderr, "galvatron search: %s\n", gv_last_error());
        return 1;
    }
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    if (!cJSON_IsObject(root)) {
        fprintf(stderr, "galvatron search: %s: not a JSON object\n", path);
        cJSON_Delete(root);
        return 1;
    }
    static const struct {
        const char *key;
        int off_kind; /* 0 search int, 1 cost int, 2 cli int */
        size_t off;
    } ints[] = {
        {"settle_bsz", 0, offsetof(gv_search_opts, settle_bsz)},
        {"settle_chunk", 0, offsetof(gv_search_opts, settle_chunk)},
        {"min_bsz", 0, offsetof(gv_search_opts, min_bsz)},
        {"max_bsz", 0, offsetof(gv_search_opts, max_bsz)},
        {"bsz_scale", 0, offsetof(gv_search_opts, bsz_scale)},
        {"fine_grained_mode", 0, offsetof(gv_search_opts, fine_grained)},
        {"disable_dp", 0, offsetof(gv_search_opts, disable_dp)},
        {"disable_tp", 0, offsetof(gv_search_opts, disable_tp)},
        {"disable_sp", 0, offsetof(gv_search_opts, disable_sp)},
        {"disable_cp", 0, offsetof(gv_search_opts, disable_cp)},
        {"disable_pp", 0, offsetof(gv_search_opts, disable_pp)},
        {"disable_ckpt", 0, offsetof(gv_search_opts, disable_ckpt)},
        {"disable_fsdp", 0, offsetof(gv_search_opts, disable_fsdp)},
        {"disable_embedding_lmhead_tp", 0, offsetof(gv_search_opts, disable_vtp)},
        {"disable_embedding_lmhead_sp", 0, offsetof(gv_search_opts, disable_vsp)},
        {"disable_vtp", 0, offsetof(gv_search_opts, disable_vtp)},
        {"disable_vsp", 0, offsetof(gv_search_opts, disable_vsp)},
        {"max_tp_deg", 0, offsetof(gv_search_opts, max_tp)},
        {"max_pp_deg", 0, offsetof(gv_search_opts, max_pp)},
        {"max_sp_deg", 0, offsetof(gv_search_opts, max_sp)},
        {"max_cp_deg", 0, offsetof(gv_search_opts, max_cp)},
        {"worker", 0, offsetof(gv_search_opts, threads)},
        {"uneven_stages", 0, offsetof(gv_search_opts, uneven_stages)},
        {"async_grad_reduce", 1, offsetof(gv_cost_opts, async_grad_reduce)},
        {"sequence_parallel", 1, offsetof(gv_cost_opts, sequence_parallel)},
        {"global_memory_buffer", 1, offsetof(gv_cost_opts, global_memory_buffer)},
        {"overlap_grad_sync", 1, offsetof(gv_cost_opts, overlap_grad_sync)},
        {"overlap", 1, offsetof(gv_cost_opts, overlap)}, /* the runtime's: ZeRO-3's second layer slot */
        {"num_nodes", 2, offsetof(gv_search_cli, num_nodes)},
        {"num_gpus_per_node", 2, offsetof(gv_search_cli, gpus_per_node)},
        {"seq_length", 2, offsetof(gv_search_cli, seq)},
        {"hidden_size", 2, offsetof(gv_search_cli, hidden)},
        {"num_layers", 2, offsetof(gv_search_cli, layers)},
    };
    /* options Galvatron has that do not change this search's result */
    static const char *const ignored[] = {"parallel_search",
                                          "log_dir",
                                          "output_config_path",
                                          "recommend_min_bsz",
                                          "allreduce_bandwidth_config_path",
                                          "p2p_bandwidth_config_path",
                                          "overlap_coe_path",
                                          "sp_time_path",
                                          "memory_profiling_path",
                                          "time_profiling_path",
                                          "model_size",
                                          "num_attention_heads",
                                          "vocab_size",
                                          "ffn_hidden_size",
                                          "use_flash_attn"};
    const cJSON *it;
    int rc = 0;
    cJSON_ArrayForEach(it, root) {
        const char *k = it->string;
        int done = 0;
        for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !done; i++) {
            if (strcmp(k, ints[i].key)) continue;
            done = 1;
            double v = cJSON_IsBool(it) ? (cJSON_IsTrue(it) ? 1 : 0) : it->valuedouble;
            if (!(cJSON_IsNumber(it) || cJSON_IsBool(it)) || v != (int)v || v < 0) {
                rc = gv_bad("%s: field '%s' must be a non-negative integer", path, k);
                break;
            }
            char *base = ints[i].off_kind == 0   ? (char *)so
                         : ints[i].off_kind == 1 ? (char *)co
                                                 : (char *)cli;
            *(int *)(base + ints[i].off) = (int)v;
        }
        if (done) {
            if (rc) break;
            continue;
        }
        if (!strcmp(k, "memory_constraint") || !strcmp(k, "debug_costmodel_coe") ||
            !strcmp(k, "context_mb")) {
            int zero_ok = k[0] == 'c';
            if (!cJSON_IsNumber(it) || !(it->valuedouble > 0 || (zero_ok && it->valuedouble == 0))) {
                rc = gv_bad(zero_ok ? "%s: field '%s' must be a non-negative number"
                                    : "%s: field '%s' must be a positive number",
                            path, k);
                break;
            }
            if (k[0] == 'm')
                cli->memory_gb = it->valuedouble;
            else if (k[0] == 'd')
                co->costmodel_coe = it->valuedouble;
            else
                co->context_mb = it->valuedouble; /* fixed memory per stage (Galvatron: 1024) */
            continue;
        }
        if (!strcmp(k, "model_name")) {
            if (!cJSON_IsString(it) || strlen(it->valuestring) >= sizeof cli->model_name) {
                rc = gv_bad("%s: field '%s' must be a string", path, k);
                break;
            }
            snprintf(cli->model_name, sizeof cli->model_name, "%s", it->valuestring);
            continue;
        }
        if (!strcmp(k, "default_dp_type") || !strcmp(k, "pipeline_type") || !strcmp(k, "mixed_precision") ||
            !strcmp(k, "time_profile_mode") || !strcmp(k, "memory_profile_mode")) {
            const char *v = cJSON_IsString(it) ? it->valuestring : NULL;
            int ok = v != NULL;
            if (ok && k[0] == 'd') {
                if (!strcmp(v, "ddp"))
                    so->default_dp_type = 0;
                else if (!strcmp(v, "zero2"))
                    so->default_dp_type = 2;
                else if (!strcmp(v, "zero3"))
                    so->default_dp_type = 3;
                else
                    ok = 0;
            } else if (ok && k[0] == 'p') {
                if (!strcmp(v, "gpipe"))
                    co->pipeline = GV_SCHED_GPIPE;
                else if (!strcmp(v, "pipedream_flush") || !strcmp(v, "1f1b"))
                    co->pipeline = GV_SCHED_1F1B;
                else
                    ok = 0;
            } else if (ok && k[0] == 'm' && k[1] == 'i') {
                if (!strcmp(v, "bf16") || !strcmp(v, "fp16"))
                    co->mixed_precision = 1;
                else if (!strcmp(v, "fp32"))
                    co->mixed_precision = 0;
                else
                    ok = 0;
            } else if (ok) {
                gv_profile_mode *m = k[0] == 't' ? &cli->time_mode : &cli->mem_mode;
                if (!strcmp(v, "static"))
                    *m = GV_PROFILE_STATIC;
                else if (!strcmp(v, "batch"))
                    *m = GV_PROFILE_BATCH;
                else if (!strcmp(v, "sequence"))
                    *m = GV_PROFILE_SEQUENCE;
                else
                    ok = 0;
            }
            if (!ok) {
                static const char *const expect[] = {"ddp, zero2 or zero3", "gpipe or pipedream_flush",
                                                     "bf16, fp16 or fp32", "static, batch or sequence"};
                int e = k[0] == 'd' ? 0 : k[0] == 'p' ? 1 : k[0] == 'm' && k[1] == 'i' ? 2 : 3;
                fprintf(stderr, "galvatron search: %s: field '%s': expected %s\n", path, k, expect[e]);
                rc = 1;
                break;
            }
            continue;
        }
        int ign = 0;
        for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) ign |= !strcmp(k, ignored[i]);
        if (ign) continue;
        rc = gv_bad("%s: unknown field '%s'", path, k);
        break;
    }
    cJSON_Delete(root);
    return rc;
}

static double gv_parse_pos(const char *flag, const char *v) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *v == '\0' || *end != '\0' || !(x > 0) || !isfinite(x)) {
        fprintf(stderr, "galvatron search: %s '%s': expected a positive number\n", flag, v);
        exit(2);
    }
    return x;
}

static int gv_parse_count(const char *flag, const char *v) {
    double x = gv_parse_pos(flag, v);
    if (x != (int)x) {
        fprintf(stderr, "galvatron search: %s '%s': expected a positive integer\n", flag, v);
        exit(2);
    }
    return (int)x;
}

static void gv_print_plan(const gv_search_result *r, const gv_cost_model *cm) {
    const gv_plan *p = &r->plan;
    const gv_plan_cost *c = &r->cost;
    printf("plan: %d ranks, pp %d (%s), global batch %d in %d micro-batch(es), stages %s", p->world, p->pp,
           p->schedule == GV_SCHED_GPIPE ? "gpipe" : "1f1b", p->global_batch, p->micro_batches, "");
    for (int k = 0; k < p->pp; k++) printf("%s%d", k ? "," : "", p->stage_layers[k]);
    printf(" layers\n");
    gv_strategy ls[4096], vs;
    if (p->n_layer <= 4096) {
        gv_plan_strategies(p, ls, &vs);
        printf("layers:");
        for (int i = 0; i < p->n_layer;) {
            int j = i;
            while (j < p->n_layer && !memcmp(&ls[j], &ls[i], sizeof ls[i])) j++;
            char s[48];
            gv_strategy_str(&ls[i], s, sizeof s);
            printf(" %d-%d: %s%s%s;", i, j - 1, s, p->layers[i].sp == GV_SP_MEGATRON ? " (megatron-sp)" : "",
                   p->layers[i].zero == 2   ? " zero2"
                   : p->layers[i].zero == 1 ? " zero1"
                                            : "");
            i = j;
        }
        char s[48];
        gv_strategy_str(&vs, s, sizeof s);
        printf("\nvocab: %s (tp %d, %s, %s)\n", s, p->vocab.tp, gv_sp_mode_name(p->vocab.sp),
               gv_zero_name(p->vocab.zero));
    }
    printf("predicted (%s cost model): step %.4f s, %.3f samples/s\n",
           cm->o.mode == GV_COST_GALVATRON ? "galvatron" : "own", c->step_s, c->throughput);
    printf("%-6s %10s %10s %10s %10s %10s %10s %10s\n", "stage", "params", "grads", "optimizer", "activ.",
           "comm", "workspace", "total MiB");
    for (int k = 0; k < p->pp; k++) {
        const gv_cost_mem *m = &c->mem[k];
        printf("%-6d %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f %10.0f\n", k, m->parameters, m->gradients,
               m->optimizer, m->activations, m->comm, m->workspace, c->mem_total[k]);
    }
}

int gv_cmd_search(int argc, char **argv) {
    const char *model = "gpt2-tiny", *profile_dir = NULL, *options = NULL, *out = NULL, *gout = NULL;
    int world = 0, layers = 0, bsz = 0, chunks = 0, threads = 0, seq = 0;
    double memory = 0;
    gv_cost_mode mode = GV_COST_OWN;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(gv_usage_search, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "galvatron search: option '%s' needs a value (see galvatron search --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "-n"))
            world = gv_parse_count(a, v);
        else if (!strcmp(a, "--layers"))
            layers = gv_parse_count(a, v);
        else if (!strcmp(a, "--seq"))
            seq = gv_parse_count(a, v);
        else if (!strcmp(a, "--memory"))
            memory = gv_parse_pos(a, v);
        else if (!strcmp(a, "--profile-dir"))
            profile_dir = v;
        else if (!strcmp(a, "--options"))
            options = v;
        else if (!strcmp(a, "-o"))
            out = v;
        else if (!strcmp(a, "--galvatron-out"))
            gout = v;
        else if (!strcmp(a, "--global-batch"))
            bsz = gv_parse_count(a, v);
        else if (!strcmp(a, "--micro-batches"))
            chunks = gv_parse_count(a, v);
        else if (!strcmp(a, "--threads"))
            threads = gv_parse_count(a, v);
        else if (!strcmp(a, "--cost-model")) {
            if (!strcmp(v, "own"))
                mode = GV_COST_OWN;
            else if (!strcmp(v, "galvatron"))
                mode = GV_COST_GALVATRON;
            else {
                fprintf(stderr, "galvatron search: --cost-model '%s': expected own or galvatron\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "galvatron search: unknown option '%s' (see galvatron search --help)\n", a);
            return 2;
        }
    }
    gv_model_spec spec;
    if (gv_model_spec_resolve(&spec, model) != GV_OK) {
        fprintf(stderr, "galvatron search: %s\n", gv_last_error());
        return 1;
    }
    gv_search_opts so;
    gv_cost_opts co;
    gv_search_cli cli;
    memset(&cli, 0, sizeof cli);
    gv_search_opts_default(&so, 0, 0, 0);
    gv_cost_opts_default(&co, mode, 0, 0, 0);
    if (options && gv_read_options(options, &so, &co, &cli)) return 1;
    if (layers) cli.layers = layers;
    if (seq) cli.seq = seq;
    if (!cli.layers) cli.layers = spec.n_layer;
    if (!cli.hidden) cli.hidden = spec.n_embd;
    if (!cli.seq) cli.seq = spec.max_seq;
    if (!cli.model_name[0]) snprintf(cli.model_name, sizeof cli.model_name, "%s", spec.name);
    if (cli.num_nodes || cli.gpus_per_node) {
        if (!cli.num_nodes) cli.num_nodes = 1;
        if (!cli.gpus_per_node) cli.gpus_per_node = world ? world / cli.num_nodes : 1;
        if (world && world != cli.num_nodes * cli.gpus_per_node) {
            fprintf(stderr, "galvatron search: -n %d but %s gives %d nodes x %d GPUs\n", world, options,
                    cli.num_nodes, cli.gpus_per_node);
            return 2;
        }
        world = cli.num_nodes * cli.gpus_per_node;
    } else if (world) {
        cli.num_nodes = 1;
        cli.gpus_per_node = world;
    }
    if (memory) cli.memory_gb = memory;
    if (!world || !cli.memory_gb || !profile_dir) {
        fprintf(stderr, "galvatron search: needs -n (or num_nodes x num_gpus_per_node), --memory (or "
                        "memory_constraint) and --profile-dir\n");
        fputs(gv_usage_search, stderr);
        return 2;
    }
    if (bsz) so.settle_bsz = bsz;
    if (chunks) so.settle_chunk = chunks;
    if (threads) so.threads = threads;
    if (!so.settle_bsz && !so.max_bsz) {
        fprintf(stderr, "galvatron search: give a global batch (--global-batch or settle_bsz) or a range "
                        "(min_bsz, max_bsz, bsz_scale in --options)\n");
        return 2;
    }
    so.world = world;
    so.n_layer = cli.layers;
    so.memory_mb = cli.memory_gb * 1024;
    so.spec = &spec;
    co.world = world;
    co.hidden = cli.hidden;
    co.seq = cli.seq;
    /* the layer types (t5: encoder then decoder layers; --layers changes the encoder, as train's does) */
    gv_model_spec ts = spec;
    ts.n_layer = cli.layers;
    if (gv_model_spec_layer_types(&ts, NULL, NULL) > 1 && ts.n_dec_layer >= ts.n_layer) {
        fprintf(stderr, "galvatron search: %d layers leave %s no encoder layer (%d decoder layers)\n",
                cli.layers, spec.name, ts.n_dec_layer);
        return 2;
    }
    gv_cost_opts_set_layers(&co, &ts);
    /* fp32 profiles are this runtime's CPU ranks: memory by the runtime's own formula (exact) */
    if (!co.mixed_precision && mode == GV_COST_OWN && cli.layers == spec.n_layer) co.spec = &spec;

    static gv_cost_env env; /* large: not on the stack */
    if (gv_cost_env_load(&env, profile_dir, cli.model_name, cli.num_nodes, cli.gpus_per_node, &co,
                         cli.time_mode, cli.mem_mode) != GV_OK) {
        fprintf(stderr, "galvatron search: %s\n", gv_last_error());
        return 1;
    }
    const gv_cost_model cm = env.cm;
    gv_search_result r;
    gv_status st = gv_search_run(&cm, &so, &r);
    if (st != GV_OK) {
        fprintf(stderr, "galvatron search: %s\n", gv_last_error());
        if (r.plan.layers) {
            printf("closest plan:\n");
            gv_print_plan(&r, &cm);
        }
        gv_search_result_free(&r);
        return 1;
    }
    printf("searched %d tasks in %.1f ms\n", r.tasks, r.ms);
    gv_print_plan(&r, &cm);
    if (r.n_alt) {
        printf("next best:\n");
        for (int i = 0; i < r.n_alt; i++) {
            const gv_search_alt *a = &r.alt[i];
            printf("  +%5.1f%%  %.3f samples/s  B %d, m %d, pp %d, vocab tp %d%s%s: %s\n", a->gap * 100,
                   a->throughput, a->global_batch, a->micro_batches, a->pp, a->vocab_tp,
                   a->vocab_sp ? " sp" : "", a->vocab_zero3 ? " zero3" : "", a->layers);
        }
    }
    if (gv_plan_validate(&r.plan, &spec, cli.seq, "plan") != GV_OK)
        fprintf(stderr, "galvatron search: warning: the runtime would refuse this plan for %s: %s\n",
                spec.name, gv_last_error());
    int rc = 0;
    if (out) {
        if (gv_plan_save(&r.plan, out) != GV_OK) {
            fprintf(stderr, "galvatron search: %s\n", gv_last_error());
            rc = 1;
        } else {
            printf("wrote %s\n", out);
        }
    }
    char gname[512];
    if (!gout && mode == GV_COST_GALVATRON) {
        snprintf(gname, sizeof gname, "galvatron_config_%s_%dnodes_%dgpus_per_node_%dGB_%s_bsz%d.json",
                 cli.model_name, cli.num_nodes, cli.gpus_per_node, (int)cli.memory_gb,
                 co.mixed_precision ? "bf16" : "fp32", r.plan.global_batch);
        gout = gname;
    }
    if (gout) {
        if (gv_search_save_galvatron(&r, &so, gout) != GV_OK) {
            fprintf(stderr, "galvatron search: %s\n", gv_last_error());
            rc = 1;
        } else {
            printf("wrote %s\n", gout);
        }
    }
    gv_search_result_free(&r);
    return rc;
}
