/* Plans: validation gives the exact reason; galvatron_config and the project's form round-trip. */
#include <string.h>
#include <sys/stat.h>

#include "gv/fileio.h"
#include "gv/plan.h"
#include "test.h"

static gv_layer_strategy S(int tp, gv_sp_mode sp, int zero, int ckpt) {
    gv_layer_strategy s = {tp, sp, zero, ckpt};
    return s;
}

/* Validation of a uniform plan fails with a message containing `want` (or passes when want is NULL). */
static void expect(const gv_model_spec *spec, int world, int pp, gv_layer_strategy l, gv_layer_strategy v,
                   int B, int M, int seq, const char *want) {
    gv_plan p;
    CHECK_OK(gv_plan_uniform(&p, world, pp, spec->n_layer, l, v, GV_SCHED_1F1B, B, M));
    gv_status st = gv_plan_validate(&p, spec, seq, "plan");
    if (!want) {
        if (st != GV_OK) fprintf(stderr, "unexpected rejection: %s\n", gv_last_error());
        CHECK(st == GV_OK);
    } else {
        CHECK(st != GV_OK);
        if (st == GV_OK || !strstr(gv_last_error(), want))
            fprintf(stderr, "want '%s', got '%s'\n", want, st == GV_OK ? "(accepted)" : gv_last_error());
        CHECK(st != GV_OK && strstr(gv_last_error(), want));
    }
    gv_plan_free(&p);
}

static void test_validate(void) {
    gv_model_spec g, l;
    CHECK_OK(gv_model_spec_preset(&g, "gpt2-tiny"));  /* C 64, H 4, F 256, V 512 */
    CHECK_OK(gv_model_spec_preset(&l, "llama-tiny")); /* H 4, KVH 2, F 176 */
    gv_layer_strategy one = S(1, GV_SP_NONE, 0, 0);
    expect(&g, 4, 1, one, one, 8, 1, 64, NULL);
    expect(&g, 8, 2, S(2, GV_SP_MEGATRON, 3, 1), S(2, GV_SP_NONE, 0, 0), 8, 2, 64, NULL);
    expect(&g, 6, 4, one, one, 8, 1, 64, "pp 4 does not divide the world size 6");
    expect(&g, 4, 1, S(3, GV_SP_NONE, 0, 0), one, 8, 1, 64, "tp 3 does not divide the 4 ranks of a stage");
    expect(&g, 8, 1, S(8, GV_SP_NONE, 0, 0), one, 8, 1, 64, "layer 0: tp 8 does not divide n_head 4");
    expect(&l, 4, 1, S(4, GV_SP_NONE, 0, 0), one, 8, 1, 64, "layer 0: tp 4 does not divide n_kv_head 2");
    expect(&l, 4, 1, S(4, GV_SP_ULYSSES, 0, 0), one, 8, 1, 64,
           "ulysses degree 4 does not divide n_kv_head 2");
    gv_model_spec f = g;
    f.ffn = 255;
    expect(&f, 2, 1, S(2, GV_SP_NONE, 0, 0), one, 8, 1, 64, "tp 2 does not divide ffn 255");
    gv_model_spec v = g;
    v.padded_vocab = 514;
    v.vocab = 514;
    expect(&v, 4, 1, one, S(4, GV_SP_NONE, 0, 0), 8, 1, 64,
           "vocab: tp 4 does not divide the padded vocab 514");
    expect(&g, 2, 1, S(2, GV_SP_MEGATRON, 0, 0), one, 8, 1, 63,
           "megatron degree 2 does not divide the sequence length 63");
    expect(&g, 2, 1, S(2, GV_SP_ULYSSES, 0, 0), one, 8, 1, 63,
           "ulysses degree 2 does not divide the sequence length 63");
    expect(&g, 2, 1, S(1, GV_SP_MEGATRON, 0, 0), one, 8, 1, 64, "Megatron sequence parallelism needs tp > 1");
    expect(&g, 4, 1, one, one, 6, 1, 64, "dp 4 does not divide the micro-batch of 6 sequences");
    expect(&g, 4, 1, one, one, 8, 4, 64, "dp 4 does not divide the micro-batch of 2 sequences");
    expect(&g, 4, 1, one, one, 8, 3, 64, "3 micro-batches do not divide the global batch 8");
    expect(&g, 2, 1, S(2, GV_SP_NONE, 2, 0), one, 8, 1, 64,
           "zero2 needs a data-parallel group larger than 1");
    expect(&g, 4, 4, one, one, 8, 1, 64, "pp 4 exceeds the 2 layers");
    expect(&g, 4, 1, S(1, GV_SP_NONE, 5, 0), one, 8, 1, 64, "ZeRO stage 5 is not 0..3");

    gv_plan p;
    CHECK_OK(gv_plan_uniform(&p, 4, 2, 2, one, one, GV_SCHED_GPIPE, 8, 2));
    p.stage_layers[0] = 2;
    p.stage_layers[1] = 0;
    CHECK(gv_plan_validate(&p, &g, 64, "x.json") != GV_OK && strstr(gv_last_error(), "stage 1 has 0 layers"));
    p.stage_layers[1] = 1;
    CHECK(gv_plan_validate(&p, &g, 64, "x.json") != GV_OK &&
          strstr(gv_last_error(), "x.json: pp_division sums to 3 layers, the model has 2"));
    gv_plan_free(&p);
}

static void write_file(const char *path, const char *txt) {
    CHECK_OK(gv_file_write_atomic(path, txt, strlen(txt)));
}

static void test_galvatron_config(void) {
    mkdir("plan_tmp", 0755);
    /* The shape of the reference's llama2-7b example, on 8 ranks with 4 layers. */
    write_file("plan_tmp/g.json",
               "{\"pp_deg\": 2, \"tp_sizes_enc\": \"1,2,4,2\", \"tp_consecutive_flags\": \"1,1,1,1\","
               " \"dp_types_enc\": \"0,1,0,0\", \"use_sp\": \"0,0,1,0\", \"checkpoint\": \"1,0,0,1\","
               " \"global_bsz\": 16, \"chunks\": 4, \"pp_division\": \"3,1\","
               " \"pipeline_type\": \"gpipe\", \"default_dp_type\": \"zero2\", \"vtp\": 2,"
               " \"vsp\": 0, \"vocab_sdp\": 1}");
    gv_plan p;
    CHECK_OK(gv_plan_load(&p, "plan_tmp/g.json", 4, 8));
    CHECK(p.pp == 2 && p.world == 8 && p.global_batch == 16 && p.micro_batches == 4);
    CHECK(p.schedule == GV_SCHED_GPIPE && p.stage_layers[0] == 3 && p.stage_layers[1] == 1);
    CHECK(p.layers[0].tp == 1 && p.layers[0].zero == 2 && p.layers[0].ckpt == 1);
    CHECK(p.layers[1].tp == 2 && p.layers[1].zero == 3 && p.layers[1].ckpt == 0);
    CHECK(p.layers[2].tp == 4 && p.layers[2].sp == GV_SP_ULYSSES);
    CHECK(p.vocab.tp == 2 && p.vocab.zero == 3 && p.vocab.sp == GV_SP_NONE);
    /* Round trip through both forms. */
    CHECK_OK(gv_plan_save_galvatron(&p, "plan_tmp/g2.json"));
    CHECK_OK(gv_plan_save(&p, "plan_tmp/own.json"));
    gv_plan q, r;
    CHECK_OK(gv_plan_load(&q, "plan_tmp/g2.json", 4, 0));
    CHECK_OK(gv_plan_load(&r, "plan_tmp/own.json", 4, 8));
    for (int i = 0; i < 4; i++) {
        CHECK(memcmp(&q.layers[i], &p.layers[i], sizeof p.layers[i]) == 0);
        CHECK(memcmp(&r.layers[i], &p.layers[i], sizeof p.layers[i]) == 0);
    }
    CHECK(memcmp(&r.vocab, &p.vocab, sizeof p.vocab) == 0 && memcmp(&q.vocab, &p.vocab, sizeof p.vocab) == 0);
    CHECK(q.stage_layers[0] == 3 && r.stage_layers[0] == 3 && q.micro_batches == 4 && r.global_batch == 16);
    gv_plan_free(&q);
    gv_plan_free(&r);
    /* What galvatron_config cannot say is refused, not silently dropped. */
    p.layers[0].sp = GV_SP_MEGATRON;
    CHECK(gv_plan_save_galvatron(&p, "plan_tmp/g3.json") == GV_ERR_UNSUPPORTED &&
          strstr(gv_last_error(), "no per-layer Megatron-SP flag"));
    p.layers[0].sp = GV_SP_NONE, p.layers[0].zero = 1;
    CHECK(gv_plan_save_galvatron(&p, "plan_tmp/g3.json") == GV_ERR_UNSUPPORTED &&
          strstr(gv_last_error(), "no zero1"));
    gv_plan_free(&p);

    /* embed_sdp (what the search writes) means the same as vocab_sdp. */
    write_file("plan_tmp/e.json", "{\"pp_deg\": 1, \"tp_sizes_enc\": \"1,1\", \"dp_types_enc\": \"0,0\", "
                                  "\"global_bsz\": 8, \"embed_sdp\": 1, \"world_size\": 2}");
    CHECK_OK(gv_plan_load(&p, "plan_tmp/e.json", 2, 0));
    CHECK(p.vocab.zero == 3 && p.world == 2 && p.layers[1].zero == 0);
    gv_plan_free(&p);

    /* The default dp type applies where there is data parallelism: a tp = stage layer (and the vocab
     * layers at vtp = stage) run DDP, an explicit zero3 there stays (and validation names it). */
    write_file("plan_tmp/d.json",
               "{\"pp_deg\": 2, \"tp_sizes_enc\": \"2,1,1,2\", \"dp_types_enc\": \"0,0,1,1\", "
               "\"default_dp_type\": \"zero2\", \"global_bsz\": 8, \"vtp\": 2, "
               "\"world_size\": 4}");
    CHECK_OK(gv_plan_load(&p, "plan_tmp/d.json", 4, 0));
    CHECK(p.layers[0].zero == 0 && p.layers[1].zero == 2 && p.layers[2].zero == 3 && p.layers[3].zero == 3);
    CHECK(p.vocab.zero == 0);
    gv_plan_free(&p);

    struct {
        const char *txt, *want;
    } bad[] = {
        {"{\"pp_deg\": 1, \"tp_sizes_enc\": \"1,1,1\", \"dp_types_enc\": \"0,0\"}",
         "field 'tp_sizes_enc' has 3 entries, expected 2"},
        {"{\"pp_deg\": 1, \"tp_sizes_enc\": \"1,1\"}", "missing field 'dp_types_enc'"},
        {"{\"pp_deg\": 1, \"tp_sizes_enc\": \"1,x\", \"dp_types_enc\": \"0,0\"}",
         "is not a comma-separated integer list"},
        {"{\"pp_deg\": 1, \"tp_sizes_enc\": \"1,1\", \"dp_types_enc\": \"0,2\"}",
         "'dp_types_enc': entry 1 is 2"},
        {"{\"pp_deg\": 1, \"tp_sizes_enc\": \"1,1\", \"dp_types_enc\": \"0,0\", \"default_dp_type\": "
         "\"fsdp\"}",
         "field 'default_dp_type': unknown value 'fsdp'"},
        {"{\"pp_deg\": 1, \"tp_sizes_enc\": \"1,1\", \"dp_types_enc\": \"0,0\", \"pipeline_type\": \"zb\"}",
         "field 'pipeline_type': unknown value 'zb'"},
        {"{\"pp_deg\": 2, \"tp_sizes_enc\": \"1,1\", \"dp_types_enc\": \"0,0\", \"pp_division\": \"1,1,1\"}",
         "field 'pp_division' has 3 entries, expected 2"},
        {"{\"pp_deg\": 1, \"tp_sizes_enc\": \"1,1\", \"dp_types_enc\": \"0,0\", \"world_size\": 4}",
         "plan is for world_size 4, but 8 ranks were given"},
        {"{\"layers\": [], \"world\": 8}", "field 'layers' has 0 entries, the model has 2 layers"},
        {"{\"layers\": [{\"tp\": 1}, {\"tp\": 1, \"sp\": \"ring\"}], \"world\": 8, \"global_batch\": 8}",
         "field 'layers[1].sp': unknown value 'ring'"},
        {"{\"layers\": [{\"tp\": 1}, {\"tq\": 1}], \"world\": 8, \"global_batch\": 8}",
         "layers[1]: unknown field 'tq'"},
        {"{\"tp\": 1}", "neither a galvatron_config"},
        {"{\"pp_deg\": 1, \"tp_sizes_enc\": \"1,1,\", \"dp_types_enc\": \"0,0\"}",
         "is not a comma-separated integer list"},
        {"{\"pp_deg\": 1, \"tp_sizes_enc\": \"1,1\", \"tp_consecutive_flags\": \"1,0\", \"dp_types_enc\": "
         "\"0,0\", \"global_bsz\": 8}",
         "'tp_consecutive_flags': entry 1 is 0"},
        {"{\"pp_deg\": 1, \"tp_sizes_enc\": \"1,1\", \"dp_types_enc\": \"0,0\"}",
         "missing field 'global_bsz'"},
        {"{\"pp_deg\": 1, ", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file("plan_tmp/bad.json", bad[i].txt);
        gv_status st = gv_plan_load(&p, "plan_tmp/bad.json", 2, 8);
        if (st == GV_OK || !strstr(gv_last_error(), bad[i].want) ||
            !strstr(gv_last_error(), "plan_tmp/bad.json"))
            fprintf(stderr, "case %zu: want '%s', got '%s'\n", i, bad[i].want,
                    st == GV_OK ? "(ok)" : gv_last_error());
        CHECK(st != GV_OK && strstr(gv_last_error(), bad[i].want) &&
              strstr(gv_last_error(), "plan_tmp/bad.json"));
        if (st == GV_OK) gv_plan_free(&p);
    }
}

/* The compact notation: words per layer, vocab word, stages; malformed words are refused with the word. */
static void test_compact(void) {
    gv_plan p;
    CHECK_OK(gv_plan_compact(&p, 8, 2, GV_SCHED_GPIPE, 16, 4, " t2 t1c u2z1 m4z3c", "t2z2", "3,1"));
    CHECK(p.n_layer == 4 && p.world == 8 && p.pp == 2 && p.schedule == GV_SCHED_GPIPE);
    CHECK(p.layers[0].tp == 2 && p.layers[0].sp == GV_SP_NONE && !p.layers[0].ckpt && p.layers[0].zero == 0);
    CHECK(p.layers[1].tp == 1 && p.layers[1].ckpt);
    CHECK(p.layers[2].tp == 2 && p.layers[2].sp == GV_SP_ULYSSES && p.layers[2].zero == 1);
    CHECK(p.layers[3].tp == 4 && p.layers[3].sp == GV_SP_MEGATRON && p.layers[3].zero == 3 &&
          p.layers[3].ckpt);
    CHECK(p.vocab.tp == 2 && p.vocab.zero == 2 && p.stage_layers[0] == 3 && p.stage_layers[1] == 1);
    gv_plan_free(&p);
    CHECK_OK(gv_plan_compact(&p, 2, 2, GV_SCHED_1F1B, 8, 2, "t1 t1 t1", "t1", NULL));
    CHECK(p.stage_layers[0] == 2 && p.stage_layers[1] == 1); /* even, earlier stages take the extra */
    gv_plan_free(&p);
    const char *bad[][2] = {
        {"t2 x1", "'x1'"}, {"t", "degree"}, {"t2z9", "ZeRO stage"}, {"t2q", "unexpected 'q'"}};
    for (int i = 0; i < 4; i++) {
        CHECK(gv_plan_compact(&p, 2, 1, GV_SCHED_1F1B, 8, 1, bad[i][0], "t1", NULL) == GV_ERR_INVALID);
        CHECK(strstr(gv_last_error(), bad[i][1]) != NULL);
    }
    CHECK(gv_plan_compact(&p, 2, 2, GV_SCHED_1F1B, 8, 1, "t1 t1", "t1", "1;1") == GV_ERR_INVALID);
    CHECK(strstr(gv_last_error(), "stages '1;1'") != NULL);
}

int main(void) {
    test_compact();
    test_validate();
    test_galvatron_config();
    return gv_test_result("test_plan");
}
