/* Cost model: profile readers (and their errors) and the Galvatron-compatible formulas against values
 * computed by hand from reference §2 on the fixture profiles in tests/profiles (llama2-7b numbers of the
 * reference where it gives them). The RAN fact of §2.1 (an Ulysses layer with dp 1 has equal times with and
 * without gradient sync) is checked as such. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gv/cost.h"
#include "test.h"

#define PROF GV_SOURCE_DIR "/tests/profiles"
#define COMP PROF "/computation_profiling_bf16_llama2-7b_all.json"
#define MEM PROF "/memory_profiling_bf16_llama2-7b_all.json"
#define COMP2 PROF "/computation_profiling_bf16_t5-2type_all.json"
#define MEM2 PROF "/memory_profiling_bf16_t5-2type_all.json"

static gv_strategy S(int pp, int tp, int sp, int dp, int zero, int ckpt) {
    gv_strategy s = {pp, tp, sp, 1, dp, zero, ckpt};
    return s;
}

static void check_formulas(void) {
    gv_hw_profile hw;
    gv_model_profile mp;
    CHECK_OK(gv_hw_profile_load(&hw, PROF, 1, 8));
    CHECK_OK(gv_model_profile_load(&mp, COMP, MEM, 2048, 1, GV_PROFILE_STATIC, GV_PROFILE_STATIC));
    CHECK_CLOSE(hw.coe[3][1], 1 / 155.658, 1e-12, 0);
    CHECK_CLOSE(hw.coe[3][0], 1 / 155.658, 1e-12, 0); /* the world's strided key = its consecutive one */
    CHECK_CLOSE(hw.coe[2][0], 1 / 16.22, 1e-12, 0);
    CHECK_CLOSE(hw.ag[3].ms[0], 0.07895 / 2, 1e-12, 0); /* all-gather = half the all-reduce */
    CHECK(hw.ag[2].n == 11 && hw.a2a[1].n == 11);
    CHECK_CLOSE(mp.lt[0].param_mb, 778.2236328125, 1e-12, 0);
    CHECK_CLOSE(mp.lt[0].fwd_c, 3.937, 1e-12, 0);
    CHECK_CLOSE(mp.other_c, 2.959, 1e-12, 0);
    CHECK_CLOSE(mp.lt[0].act_mb[3], 68.32, 1e-12, 0);

    gv_cost_model cm = {&hw, &mp, {0}};
    gv_cost_opts_default(&cm.o, GV_COST_GALVATRON, 8, 4096, 2048);
    cm.o.n_layer = 32;
    gv_cost_batch b16 = {16, 1}, b16m2 = {16, 2}, b16m4 = {16, 4};
    double w, n;
    gv_strategy s;
    /* §2.1 by hand: 1-1-8 ZeRO-2, B 16, m 1: lbsz 2, fct 7.874 ms, dp_msg 680.95 MB at 1/155.658 ms/MB
     * overlapped with bct 15.748 ms under alpha 1.1256 */
    s = S(1, 1, 1, 8, 2, 0);
    gv_cost_layer_time(&cm, 0, &s, &b16, &w, &n);
    CHECK_CLOSE(w, 0.0241712456697, 1e-9, 0);
    CHECK_CLOSE(n, 0.023622, 1e-9, 0);
    /* 1-2*-4 ZeRO-3 + ckpt: strided DP group (4_0), 9 all-gathers of the 64 MB micro-batch, fsdp gather */
    s = S(1, 2, 1, 4, 3, 1);
    gv_cost_layer_time(&cm, 0, &s, &b16, &w, &n);
    CHECK_CLOSE(w, 0.0449860966049, 1e-9, 0);
    CHECK_CLOSE(n, 0.0427271266617, 1e-9, 0);
    /* RAN fact: Ulysses 1-8*-1-sp has the same time with and without gradient sync */
    s = S(1, 1, 8, 1, 0, 0);
    gv_cost_layer_time(&cm, 0, &s, &b16, &w, &n);
    CHECK_CLOSE(w, 0.02921148, 1e-9, 0);
    CHECK(w == n);
    /* pp 2: p2p volume pp * 2 * lbsz s h (bf16) per dummy layer, spread over the 32 layers */
    s = S(2, 1, 1, 4, 2, 0);
    gv_cost_layer_time(&cm, 0, &s, &b16m2, &w, &n);
    CHECK_CLOSE(w, 0.024110289946, 1e-9, 0);
    CHECK_CLOSE(n, 0.0236464392715, 1e-9, 0);
    s = S(1, 1, 4, 2, 2, 1); /* Ulysses 4 with dp 2: all-to-all table, 6 = 4 x 1.5 ops */
    gv_cost_layer_time(&cm, 0, &s, &b16, &w, &n);
    CHECK_CLOSE(w, 0.0358156456697, 1e-9, 0);
    CHECK_CLOSE(n, 0.0352664, 1e-9, 0);

    /* §2.4 memory */
    gv_cost_mem m;
    double tr;
    s = S(1, 1, 1, 8, 2, 0);
    gv_cost_layer_memory(&cm, 0, &s, &b16, 0, &m, &tr);
    CHECK_CLOSE(m.parameters + m.gradients + m.optimizer, 737.756003906, 1e-9, 0);
    CHECK_CLOSE(m.activations, 1029.12, 1e-9, 0);
    CHECK(tr == 0);
    s = S(2, 2, 1, 2, 3, 1); /* m 4, async: zero3 ratio 7/8 (1/d + .003) + 1/8; 1F1B stage 0 holds 2 */
    gv_cost_layer_memory(&cm, 0, &s, &b16m4, 0, &m, &tr);
    CHECK_CLOSE(m.parameters + m.gradients + m.optimizer, 879.587260986, 1e-9, 0);
    CHECK_CLOSE(m.activations, 64, 1e-9, 0);
    s = S(2, 1, 4, 1, 0, 1);
    gv_cost_layer_memory(&cm, 0, &s, &b16m4, 1, &m, &tr);
    CHECK_CLOSE(m.parameters + m.gradients + m.optimizer, 3112.89453125, 1e-9, 0);
    CHECK_CLOSE(m.activations, 32, 1e-9, 0);

    /* §2.2 vocab layers */
    double ow[8], on[8];
    s = S(1, 1, 1, 8, 2, 0);
    gv_cost_other_time(&cm, &s, &b16, ow, on);
    CHECK_CLOSE(ow[0], 0.0179158688619, 1e-9, 0);
    CHECK_CLOSE(on[0], 0.017754, 1e-9, 0);
    s = S(2, 2, 1, 2, 3, 0);
    gv_cost_other_time(&cm, &s, &b16m2, ow, on);
    CHECK_CLOSE(ow[0], 0.0136338286058, 1e-9, 0);
    CHECK_CLOSE(on[0], 0.0111258723097, 1e-9, 0);
    gv_cost_mem om[2];
    s = S(1, 1, 1, 8, 2, 0);
    gv_cost_other_memory(&cm, &s, &b16, om);
    /* 4130.35 x zero2(8) + 841.58 x 2 samples + 1024 context */
    CHECK_CLOSE(gv_cost_mem_total(&om[0]),
                4130.35 * (7.0 / 8 * (1.0 / 8 + .003) + 1.0 / 8) + 841.58 * 2 + 1024, 1e-9, 0);

    /* §3.3 inter-layer: Megatron-SP switch tsp 1 -> 4 (lb 8, coe 4_1) and the tie-break biases */
    gv_strategy a = S(1, 1, 1, 8, 2, 0), c4 = S(1, 4, 1, 2, 2, 0);
    CHECK_CLOSE(gv_cost_inter(&cm, &a, &c4, &b16), 0.0637173992303, 1e-9, 0);
    gv_strategy f = S(1, 1, 1, 8, 3, 0), ck = S(1, 1, 1, 8, 2, 1), fck = S(1, 1, 1, 8, 3, 1);
    gv_strategy t2 = S(1, 2, 1, 4, 2, 0), u2 = S(1, 1, 2, 4, 2, 0);
    CHECK(gv_cost_inter(&cm, &a, &f, &b16) == 1e-9);
    CHECK(gv_cost_inter(&cm, &f, &a, &b16) == 0);
    CHECK(gv_cost_inter(&cm, &a, &ck, &b16) == 2e-9);
    CHECK(gv_cost_inter(&cm, &a, &fck, &b16) == 3e-9);
    CHECK(gv_cost_inter(&cm, &ck, &fck, &b16) == 3e-9); /* the later rule overrides "c -> fc" */
    CHECK(gv_cost_inter(&cm, &f, &ck, &b16) == 1e-9);   /* f -> c */
    CHECK(gv_cost_inter(&cm, &t2, &u2, &b16) == 1e-10); /* tp -> sp of the same size */
    CHECK(gv_cost_inter(&cm, &u2, &t2, &b16) == 0);

    /* §2.3 pipeline formula on given stage times */
    double R[3] = {0.5, 0.4, 0.45}, C[3] = {0.3, 0.35, 0.2};
    CHECK_CLOSE(gv_cost_pipeline(&cm, 3, 4, R, C, 0), 1.65, 1e-12, 0);
    double R1 = 0.5, C1 = 0.3; /* pp 1: m C + max(0, R - C) */
    CHECK_CLOSE(gv_cost_pipeline(&cm, 1, 4, &R1, &C1, 0), 4 * 0.3 + 0.2, 1e-12, 0);

    /* own model: Ulysses all-to-alls are all counted (8 instead of 4), so it costs more than Galvatron's */
    gv_cost_model own = cm;
    gv_cost_opts_default(&own.o, GV_COST_OWN, 8, 4096, 2048);
    own.o.n_layer = 32;
    s = S(1, 1, 8, 1, 0, 0);
    double w2, n2;
    gv_cost_layer_time(&own, 0, &s, &b16, &w2, &n2);
    gv_cost_layer_time(&cm, 0, &s, &b16, &w, &n);
    double fct = 3.937 * 16 / 8;
    CHECK_CLOSE(n2, (3 * fct + 8 * 0.21842) * 0.001, 1e-9, 0); /* 32 MB per rank all-to-alls */
    CHECK(n2 > 0 && w2 >= n2);

    /* own model, overlap_grad_sync (the runtime's overlap on nccl): the gradient sums hide behind the last
     * backward, ZeRO-3's traffic behind every micro-batch's compute, ZeRO-1's weight gather after the
     * optimizer behind nothing: the ZeRO-1 - DDP difference (weight gather, smaller optimizer) is the same
     * with and without overlap. */
    double wt[2][3], nt[2][3];
    for (int ov = 0; ov < 2; ov++) {
        own.o.overlap_grad_sync = ov;
        for (int z = 0; z < 3; z++) {
            gv_strategy sz = S(1, 1, 1, 8, z == 2 ? 3 : z, 0);
            gv_cost_layer_time(&own, 0, &sz, &b16, &wt[ov][z], &nt[ov][z]);
        }
    }
    printf("own overlap: ddp %.6f -> %.6f s, zero1 %.6f -> %.6f s, zero3 %.6f -> %.6f s (with sync)\n",
           wt[0][0], wt[1][0], wt[0][1], wt[1][1], wt[0][2], wt[1][2]);
    CHECK(wt[1][0] < wt[0][0] && nt[1][0] == nt[0][0]); /* DDP: only the step's sum moves */
    CHECK_CLOSE(wt[1][1] - wt[1][0], wt[0][1] - wt[0][0], 1e-9, 1e-12);
    CHECK(nt[1][2] < nt[0][2] && wt[1][2] < wt[0][2]); /* ZeRO-3: every micro-batch */
    own.o.overlap_grad_sync = 0;

    /* own model, ZeRO-3 transient: the gathered parameters + the gradient slot (mixed precision: 2 + 2
     * bytes per local element), twice with the runtime's overlap (its prefetch slot); DDP none */
    double elems = cm.mp->lt[0].param_mb * 1024.0 * 1024.0 / 4, tr3[2], trd;
    gv_strategy z3 = S(1, 1, 1, 8, 3, 0), z0 = S(1, 1, 1, 8, 0, 0);
    for (int ov = 0; ov < 2; ov++) {
        own.o.overlap = ov;
        gv_cost_layer_memory(&own, 0, &z3, &b16, 0, &m, &tr3[ov]);
    }
    gv_cost_layer_memory(&own, 0, &z0, &b16, 0, &m, &trd);
    CHECK_CLOSE(tr3[0], elems * 4 / (1024.0 * 1024.0), 1e-12, 0);
    CHECK_CLOSE(tr3[1], 2 * tr3[0], 1e-12, 0);
    CHECK(trd == 0);
    own.o.overlap = 1;
}

static void write_file(const char *path, const char *txt) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(txt, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[4096];
    size_t n;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    if (a) fclose(a);
    if (b) fclose(b);
}

static int contains(const char *s, const char *sub) {
    return strstr(s, sub) != NULL;
}

static void check_errors(void) {
    char dir[] = "/tmp/gv_test_cost_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    static const char *files[] = {"allreduce_bandwidth_1nodes_8gpus_per_node.json",
                                  "p2p_bandwidth_1nodes_8gpus_per_node.json", "overlap_coefficient.json",
                                  "sp_time_1nodes_8gpus_per_node.json"};
    char from[1024], to[1024];
    for (int i = 0; i < 4; i++) {
        snprintf(from, sizeof from, "%s/%s", PROF, files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        copy_file(from, to);
    }
    gv_hw_profile hw;
    CHECK_OK(gv_hw_profile_load(&hw, dir, 1, 8));
    /* missing file */
    CHECK(gv_hw_profile_load(&hw, dir, 2, 8) == GV_ERR_IO);
    CHECK(contains(gv_last_error(), "allreduce_bandwidth_2nodes_8gpus_per_node.json"));
    /* missing key */
    snprintf(to, sizeof to, "%s/%s", dir, files[1]);
    write_file(to, "{\"pp_size_2\": 163.671, \"pp_size_8\": 109.45}");
    CHECK(gv_hw_profile_load(&hw, dir, 1, 8) == GV_ERR_FORMAT);
    CHECK(contains(gv_last_error(), "p2p_bandwidth_1nodes_8gpus_per_node.json") &&
          contains(gv_last_error(), "'pp_size_4'"));
    /* corrupt JSON */
    write_file(to, "{\"pp_size_2\": 163.671,");
    CHECK(gv_hw_profile_load(&hw, dir, 1, 8) == GV_ERR_FORMAT);
    CHECK(contains(gv_last_error(), "p2p_bandwidth_1nodes_8gpus_per_node.json") &&
          contains(gv_last_error(), "not valid JSON"));
    /* a bad value */
    write_file(to, "{\"pp_size_2\": 163.671, \"pp_size_4\": \"fast\", \"pp_size_8\": 109.45}");
    CHECK(gv_hw_profile_load(&hw, dir, 1, 8) == GV_ERR_FORMAT);
    CHECK(contains(gv_last_error(), "'pp_size_4' must be a positive number"));
    copy_file(PROF "/p2p_bandwidth_1nodes_8gpus_per_node.json", to);
    /* too few sp_time sizes */
    snprintf(to, sizeof to, "%s/%s", dir, files[3]);
    write_file(to, "{\"allreduce_size_8_1MB_time\": 0.1, \"all2all_size_8_1MB_time\": 0.1}");
    CHECK(gv_hw_profile_load(&hw, dir, 1, 8) == GV_ERR_FORMAT);
    CHECK(contains(gv_last_error(), "sp_time_1nodes_8gpus_per_node.json") &&
          contains(gv_last_error(), "allreduce_size_8_<n>MB_time"));

    /* model profiles */
    gv_model_profile mp;
    char comp[1024], mem[1024];
    snprintf(comp, sizeof comp, "%s/comp.json", dir);
    snprintf(mem, sizeof mem, "%s/mem.json", dir);
    write_file(comp, "{\"layertype_0_bsz8_seq2048\": 3.9}");
    copy_file(MEM, mem);
    CHECK(gv_model_profile_load(&mp, comp, mem, 2048, 1, GV_PROFILE_STATIC, GV_PROFILE_STATIC) ==
          GV_ERR_FORMAT);
    CHECK(contains(gv_last_error(), "comp.json") &&
          contains(gv_last_error(), "layertype_other_bsz<b>_seq<s>"));
    copy_file(COMP, comp);
    CHECK(gv_model_profile_load(&mp, comp, mem, 4096, 1, GV_PROFILE_STATIC, GV_PROFILE_STATIC) ==
          GV_ERR_FORMAT);
    CHECK(contains(gv_last_error(), "mem.json") && contains(gv_last_error(), "'layertype_0_sp.4096'"));
    CHECK(gv_model_profile_load(&mp, comp, mem, 2048, 0, GV_PROFILE_STATIC, GV_PROFILE_STATIC) ==
          GV_ERR_FORMAT);
    CHECK(contains(gv_last_error(), "missing field 'layertype_0'"));
    write_file(mem,
               "{\"layertype_0_sp\": {\"2048\": {\"parameter_size\": 778.2, \"tp_activation_per_bsz_dict\": "
               "{\"1\": 514.56}}}}");
    CHECK(gv_model_profile_load(&mp, comp, mem, 2048, 1, GV_PROFILE_STATIC, GV_PROFILE_STATIC) ==
          GV_ERR_FORMAT);
    CHECK(contains(gv_last_error(), "layertype_0_sp.2048.tp_activation_per_bsz_dict.checkpoint"));
    CHECK(gv_model_profile_load(&mp, comp, "/nonexistent/mem.json", 2048, 1, GV_PROFILE_STATIC,
                                GV_PROFILE_STATIC) == GV_ERR_IO);
    CHECK(contains(gv_last_error(), "/nonexistent/mem.json"));
    /* batch mode needs 8 batch sizes */
    CHECK(gv_model_profile_load(&mp, COMP, MEM, 2048, 1, GV_PROFILE_BATCH, GV_PROFILE_STATIC) ==
          GV_ERR_FORMAT);
    CHECK(contains(gv_last_error(), "at least 8"));
    for (int i = 0; i < 4; i++) {
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        unlink(to);
    }
    unlink(comp);
    unlink(mem);
    rmdir(dir);
}

/* The own model's latency reading: interpolation between profiled sizes, the slope beyond them, and no
 * negative times below them even when the fitted line has a negative intercept (as measured a2a tables
 * do). */
static void check_latency_own(void) {
    gv_latency_table t = {.n = 3, .mb = {1, 2, 4}, .ms = {0.2, 1.0, 3.0}, .m = 0.95, .c = -0.87};
    CHECK_CLOSE(gv_latency_own(&t, 2), 1.0, 1e-12, 0);
    CHECK_CLOSE(gv_latency_own(&t, 3), 2.0, 1e-12, 0);   /* halfway between 2 and 4 */
    CHECK_CLOSE(gv_latency_own(&t, 8), 6.8, 1e-12, 0);   /* 3.0 + 0.95 * 4 */
    CHECK_CLOSE(gv_latency_own(&t, 0.5), 0.1, 1e-12, 0); /* line negative there: proportional to size */
    CHECK(gv_latency_own(&t, 0.95) > 0 && gv_latency_own(&t, 0.95) <= 0.2);
    CHECK(gv_latency_at(&t, 0.5) < 0); /* Galvatron's reading keeps its line */
}

/* The own model's lines from the project's model profile: exact on linear points, one disturbed point of
 * five does not tilt them (Theil-Sen), other sequence lengths ignored, a missing file leaves no lines. */
static void check_own_lines(void) {
    const char *path = "test_cost_own_profile.json";
    char txt[4096], *w = txt;
    w += sprintf(w, "{\"layers_min\": 1, \"layers_max\": 2, \"time\": [");
    int bs[5] = {1, 2, 3, 4, 8};
    for (int i = 0; i < 5; i++) {
        double b = bs[i], lf = 0.5 * b + 0.25, lb = 1.0 * b + 0.5, of = 0.3 * b, ob = 0.6 * b + 0.1;
        if (i == 0) lf *= 4; /* a load burst during the first point */
        w += sprintf(
            w,
            "%s{\"seq\": 64, \"tp\": 1, \"sp\": \"none\", \"batch\": %d, \"forward_ms\": [%.9g, %.9g], "
            "\"backward_ms\": [%.9g, %.9g]}",
            i ? ", " : "", bs[i], of + lf, of + 2 * lf, ob + lb, ob + 2 * lb);
    }
    /* the pipelined run timed at batch 8 (one layer per stage: lf(8) = 4.25, lb(8) = 8.5 ms): embedding
     * 0.5 / 1.0 ms on the first stage, head 1.5 / 3.0 ms on the last, so a quarter of the vocab layers'
     * time is on the first stage */
    sprintf(w, ", {\"seq\": 128, \"tp\": 2, \"sp\": \"megatron\", \"batch\": 1, \"forward_ms\": [1, 2], "
               "\"backward_ms\": [1, 2]}], \"pipeline_time\": {\"pp\": 2, \"batch\": 8, "
               "\"first_stage_ms\": [4.75, 9.5], \"last_stage_ms\": [5.75, 11.5]}}");
    write_file(path, txt);
    gv_model_profile mp;
    memset(&mp, 0, sizeof mp);
    CHECK_OK(gv_own_profile_load(&mp, path, 64));
    CHECK(mp.n_own_time == 1 && mp.own_time[0].tp == 1);
    CHECK_CLOSE(mp.own_time[0].lf[0][0], 0.5, 1e-9, 1e-12);
    CHECK_CLOSE(mp.own_time[0].lf[0][1], 0.25, 1e-9, 1e-12);
    CHECK_CLOSE(mp.own_time[0].lb[0][0], 1.0, 1e-9, 1e-12);
    CHECK_CLOSE(mp.own_time[0].lb[0][1], 0.5, 1e-9, 1e-12);
    CHECK_CLOSE(mp.own_time[0].ob[0], 0.6, 1e-9, 1e-12);
    CHECK_CLOSE(mp.own_time[0].ob[1], 0.1, 1e-9, 1e-12);
    CHECK(mp.have_vocab_split);
    CHECK_CLOSE(mp.vocab_first[0], 0.25, 1e-6, 0);
    CHECK_CLOSE(mp.vocab_first[1], 0.25, 1e-6, 0);
    {
        /* the own model puts that share on the first stage and the rest on the last; Galvatron's halves */
        gv_hw_profile hw;
        memset(&hw, 0, sizeof hw);
        hw.world = 2;
        hw.overlap_coe = 1;
        mp.step_fixed_ms = 2;
        gv_cost_model cm = {&hw, &mp, {0}};
        gv_cost_opts_default(&cm.o, GV_COST_OWN, 2, 64, 64);
        gv_strategy v = {2, 1, 1, 1, 1, 0, 0};
        gv_cost_batch b = {8, 4};
        double w2[2], n2[2];
        gv_cost_other_time(&cm, &v, &b, w2, n2);
        double x = 2, all = (0.3 * x) + (0.6 * x + 0.1); /* of(2) + ob(2) ms */
        CHECK_CLOSE(n2[0], 1e-3 * all * 0.25, 1e-9, 1e-12);
        CHECK_CLOSE(n2[1], 1e-3 * all * 0.75, 1e-9, 1e-12);
        CHECK_CLOSE(gv_cost_fixed(&cm), 2e-3, 1e-12, 0);
        mp.have_vocab_split = 0;
        gv_cost_other_time(&cm, &v, &b, w2, n2);
        CHECK_CLOSE(n2[0], n2[1], 1e-12, 0);
        cm.o.mode = GV_COST_GALVATRON;
        CHECK(gv_cost_fixed(&cm) == 0);
    }
    CHECK_OK(gv_own_profile_load(&mp, "no-such-dir/model_profile.json", 64));
    CHECK(mp.n_own_time == 0);
    write_file(path, "{\"layers_min\": 1, \"layers_max\": 2, \"time\": [{\"seq\": 64}]}");
    CHECK(gv_own_profile_load(&mp, path, 64) != GV_OK && strstr(gv_last_error(), path));
    unlink(path);
}

/* The own model's per-type lines: runs [1, 1], [2, 1], [1, 2] (layers_min 1, layers_max 2 of an encoder
 * and a decoder type) give each type's line and the vocab layers' from the base run; the pipeline split
 * takes an encoder layer off the first stage and a decoder layer off the last. */
static void check_own_lines_types(void) {
    const char *path = "test_cost_own_profile2.json";
    char txt[4096], *w = txt;
    w += sprintf(w, "{\"layers_min\": 1, \"layers_max\": 2, \"layer_types\": [\"encoder\", \"decoder\"], "
                    "\"time\": [");
    int bs[3] = {1, 2, 4};
    for (int i = 0; i < 3; i++) {
        double x = bs[i], e = 0.5 * x + 0.25, d = 0.75 * x + 0.5, o = 0.3 * x;
        double eb = 2 * e, db = 2 * d, ob = 0.6 * x;
        w += sprintf(
            w,
            "%s{\"seq\": 64, \"tp\": 1, \"sp\": \"none\", \"batch\": %d, \"forward_ms\": [%.9g, %.9g, "
            "%.9g], \"backward_ms\": [%.9g, %.9g, %.9g]}",
            i ? ", " : "", bs[i], o + e + d, o + 2 * e + d, o + e + 2 * d, ob + eb + db, ob + 2 * eb + db,
            ob + eb + 2 * db);
    }
    /* batch 4: encoder 2.25 / 4.5 ms, decoder 3.5 / 7 ms; embedding 1 / 2 ms, head 3 / 6 ms */
    sprintf(w, "], \"pipeline_time\": {\"pp\": 2, \"batch\": 4, \"first_stage_ms\": [3.25, 6.5], "
               "\"last_stage_ms\": [6.5, 13]}}");
    write_file(path, txt);
    gv_model_profile mp;
    memset(&mp, 0, sizeof mp);
    mp.n_types = 2;
    CHECK_OK(gv_own_profile_load(&mp, path, 64));
    CHECK(mp.n_own_time == 1);
    CHECK_CLOSE(mp.own_time[0].lf[0][0], 0.5, 1e-9, 1e-12);
    CHECK_CLOSE(mp.own_time[0].lf[0][1], 0.25, 1e-9, 1e-12);
    CHECK_CLOSE(mp.own_time[0].lf[1][0], 0.75, 1e-9, 1e-12);
    CHECK_CLOSE(mp.own_time[0].lf[1][1], 0.5, 1e-9, 1e-12);
    CHECK_CLOSE(mp.own_time[0].lb[1][0], 1.5, 1e-9, 1e-12);
    CHECK_CLOSE(mp.own_time[0].of[0], 0.3, 1e-9, 1e-12);
    CHECK_CLOSE(mp.own_time[0].ob[0], 0.6, 1e-9, 1e-12);
    CHECK(mp.have_vocab_split);
    CHECK_CLOSE(mp.vocab_first[0], 0.25, 1e-6, 0);
    CHECK_CLOSE(mp.vocab_first[1], 0.25, 1e-6, 0);
    /* one type expected: the error names the file */
    mp.n_types = 1;
    CHECK(gv_own_profile_load(&mp, path, 64) != GV_OK && strstr(gv_last_error(), path) &&
          strstr(gv_last_error(), "'layer_types' has 2 layer type(s)"));
    unlink(path);
}

/* Two layer types (the t5-2type fixture: encoder F 2 ms, P 100 MB, A 40 MB; decoder F 3 ms, P 150 MB,
 * A 60 MB per sample): a plan's stage times and memory equal the sums over the layers it actually holds,
 * computed by hand from reference §2 (Galvatron) and the own model's formulas; each type's Galvatron L is
 * its own layer count. World 2, pp 2, stages of 1 and 3 layers, dp 1 (no gradient sync), layer 3
 * recomputes. */
static void check_layer_types(void) {
    gv_model_profile mp;
    CHECK_OK(gv_model_profile_load(&mp, COMP2, MEM2, 512, 1, GV_PROFILE_STATIC, GV_PROFILE_STATIC));
    CHECK(mp.n_types == 2);
    CHECK(mp.lt[0].fwd_c == 2.0 && mp.lt[1].fwd_c == 3.0 && mp.other_c == 2.5);
    CHECK(mp.lt[0].param_mb == 100 && mp.lt[1].param_mb == 150);
    CHECK(mp.lt[0].act_mb[0] == 40 && mp.lt[1].act_mb[0] == 60 && mp.lt[1].act_mb[3] == 7.5);
    CHECK(mp.lt[0].act_ckpt_mb == 2 && mp.lt[1].act_ckpt_mb == 3);
    gv_hw_profile hw;
    memset(&hw, 0, sizeof hw);
    hw.world = 2;
    hw.overlap_coe = 1;
    hw.coe[1][0] = hw.coe[1][1] = 0.1;
    hw.p2p_coe[1] = 0.01;
    gv_plan p;
    gv_layer_strategy one = {1, GV_SP_NONE, 0, 0};
    CHECK_OK(gv_plan_uniform(&p, 2, 2, 4, one, one, GV_SCHED_1F1B, 8, 4));
    p.stage_layers[0] = 1, p.stage_layers[1] = 3;
    p.layers[3].ckpt = 1;
    const int type[4] = {0, 0, 1, 1}, ck[4] = {0, 0, 0, 1}, stage[4] = {0, 1, 1, 1};
    const double F[2] = {2.0, 3.0}, P[2] = {100, 150}, A[2] = {40, 60}, AC[2] = {2, 3};
    const double MBy = 1024.0 * 1024.0, lbsz = 8 / 4 / 1;
    gv_strategy vs = {2, 1, 1, 1, 1, 0, 0};
    gv_cost_batch b = {8, 4};
    for (int mode = 0; mode < 2; mode++) {
        gv_cost_model cm = {&hw, &mp, {0}};
        gv_cost_opts_default(&cm.o, mode ? GV_COST_OWN : GV_COST_GALVATRON, 2, 1024, 512);
        cm.o.n_layer = 4;
        cm.o.n_types = 2;
        cm.o.type_layers[0] = 2, cm.o.type_layers[1] = 2;
        CHECK_OK(gv_cost_check_types(&cm.o, &mp, MEM2));
        CHECK(gv_cost_layer_type(&cm.o, 1) == 0 && gv_cost_layer_type(&cm.o, 2) == 1);
        gv_plan_cost pc;
        CHECK_OK(gv_cost_plan(&cm, &p, 0, &pc));
        double ow[2], on[2];
        gv_cost_mem om[2];
        gv_cost_other_time(&cm, &vs, &b, ow, on);
        gv_cost_other_memory(&cm, &vs, &b, om);
        double C[2] = {on[0], on[1]}, mem[2] = {0, 0}, trans[2] = {0, 0};
        for (int l = 0; l < 4; l++) {
            int t = type[l], k = stage[l], cum = 2 - k; /* 1F1B: pp - stage micro-batches in flight */
            double T;
            if (!mode) { /* fct = F lbsz L, bct = 2 fct (+ fct recompute), p2p of pp 2 (bf16), / L */
                double L = 2, fct = F[t] * lbsz * L;
                double p2p = 2.0 * 2 * lbsz * 512 * 1024 * 4 / MBy / 2 * 0.01;
                T = (fct * (ck[l] ? 4 : 3) + p2p) * 0.001 / L;
            } else { /* forward F x, backward 2 F x (+ F x recompute), no collectives at dp 1 */
                T = F[t] * lbsz * (ck[l] ? 4 : 3) * 0.001;
            }
            C[k] += T;
            /* model states 4 P; activations A (or the recompute's kept output) x in-flight x lbsz */
            mem[k] += ceil(4 * P[t] + (ck[l] ? AC[t] : A[t]) * cum * lbsz);
            if (mode && ck[l]) trans[k] = fmax(trans[k], A[t] * lbsz); /* the recompute working set */
        }
        for (int k = 0; k < 2 && mode; k++) /* own: the activations to / from the neighbour, both ways */
            C[k] += 2.0 * 1 * (lbsz * 512 * 1024 * 2 / MBy) * 0.01 * 0.001;
        for (int k = 0; k < 2; k++) {
            CHECK_CLOSE(pc.stage_c[k], C[k], 1e-12, 1e-15);
            CHECK(pc.mem_total[k] == mem[k] + ceil(trans[k]) + ceil(gv_cost_mem_total(&om[k])));
        }
        if (mode) { /* overlap on a device communicator: the runtime's nonblocking messages run beside the
                       stage's compute; overlap_coe 1 here, so the stage takes the longer of the two */
            double t = 2.0 * 1 * (lbsz * 512 * 1024 * 2 / MBy) * 0.01 * 0.001;
            gv_plan_cost po;
            cm.o.overlap_grad_sync = 1;
            CHECK_OK(gv_cost_plan(&cm, &p, 0, &po));
            cm.o.overlap_grad_sync = 0;
            for (int k = 0; k < 2; k++) CHECK_CLOSE(po.stage_c[k], fmax(C[k] - t, t), 1e-12, 1e-15);
            CHECK(po.step_s < pc.step_s);
        }
        /* the decoder layers are what make stage 1 the costlier: with encoder costs it would be less */
        CHECK(pc.stage_c[1] - on[1] > 3 * (pc.stage_c[0] - on[0]) - 1e-15);
        /* the types must match the profile's */
        cm.o.n_types = 1;
        CHECK(gv_cost_check_types(&cm.o, &mp, MEM2) == GV_ERR_FORMAT && strstr(gv_last_error(), MEM2) &&
              strstr(gv_last_error(), "2 layer type(s) profiled"));
        cm.o.n_types = 2;
        cm.o.type_layers[1] = 3;
        CHECK(gv_cost_check_types(&cm.o, &mp, MEM2) == GV_ERR_INVALID &&
              strstr(gv_last_error(), "5 layers in all, the model 4"));
    }
    gv_plan_free(&p);
    /* a computation file without the second type's keys: the error names the file and the key */
    const char *cpath = "test_cost_2type_comp.json";
    write_file(cpath, "{\"layertype_0_bsz8_seq512\": 2.0, \"layertype_other_bsz8_seq512\": 2.5}");
    CHECK(gv_model_profile_load(&mp, cpath, MEM2, 512, 1, GV_PROFILE_STATIC, GV_PROFILE_STATIC) != GV_OK);
    CHECK(strstr(gv_last_error(), cpath) && strstr(gv_last_error(), "layertype_1_bsz<b>_seq<s>"));
    unlink(cpath);
}

int main(void) {
    check_latency_own();
    check_formulas();
    check_errors();
    check_own_lines();
    check_own_lines_types();
    check_layer_types();
    return gv_test_result("test_cost");
}
