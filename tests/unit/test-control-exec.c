/* Proves the process spec "exec" gives the runtime: defaults from the
 * container's config.json (env, cwd, user), the call's env merged over
 * them by name, fallbacks without a config, and how captured output is
 * put into the answer (text, or base64 when it is not clean UTF-8). */
#include "control-exec.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char *spec_text(json_object *spec)
{
        return json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

START_TEST(test_spec_from_config_with_env_merged)
{
        json_object *config = json_tokener_parse(
                "{\"process\":{\"user\":{\"uid\":5,\"gid\":6},\"cwd\":\"/work\","
                "\"env\":[\"PATH=/bin\",\"HOME=/root\"],\"args\":[\"ignored\"]}}");
        const char *args[] = { "sh", "-c", "echo hi", NULL };
        const char *env[] = { "HOME=/home/x", "NEW=1", NULL };
        json_object *spec = control_exec_build_spec(config, args, env, NULL);
        ck_assert_str_eq(spec_text(spec),
                         "{\"terminal\":false,\"user\":{\"uid\":5,\"gid\":6},"
                         "\"args\":[\"sh\",\"-c\",\"echo hi\"],"
                         "\"env\":[\"PATH=/bin\",\"HOME=/home/x\",\"NEW=1\"],\"cwd\":\"/work\"}");
        json_object_put(spec);
        json_object_put(config);
}
END_TEST

START_TEST(test_spec_without_config_uses_fallbacks_and_given_cwd)
{
        const char *args[] = { "true", NULL };
        json_object *spec = control_exec_build_spec(NULL, args, NULL, "/tmp");
        ck_assert_str_eq(spec_text(spec),
                         "{\"terminal\":false,\"user\":{\"uid\":0,\"gid\":0},\"args\":[\"true\"],"
                         "\"env\":[\"PATH=/usr/sbin:/usr/bin:/sbin:/bin\"],\"cwd\":\"/tmp\"}");
        json_object_put(spec);
        spec = control_exec_build_spec(NULL, args, NULL, NULL);
        json_object *cwd;
        ck_assert(json_object_object_get_ex(spec, "cwd", &cwd));
        ck_assert_str_eq(json_object_get_string(cwd), "/");
        json_object_put(spec);
}
END_TEST

START_TEST(test_spec_env_name_match_is_exact)
{
        json_object *config = json_tokener_parse("{\"process\":{\"env\":[\"AB=1\",\"A=2\",\"FLAG\"]}}");
        const char *args[] = { "x", NULL };
        const char *env[] = { "A=3", "FLAG=on", NULL };
        json_object *spec = control_exec_build_spec(config, args, env, NULL);
        json_object *e;
        ck_assert(json_object_object_get_ex(spec, "env", &e));
        ck_assert_str_eq(json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN), "[\"AB=1\",\"A=3\",\"FLAG=on\"]");
        json_object_put(spec);
        json_object_put(config);
}
END_TEST

START_TEST(test_output_text_or_base64)
{
        json_object *o = json_object_new_object();
        control_exec_add_output(o, "stdout", (const guint8 *) "h\xc3\xa9\n", 4);
        control_exec_add_output(o, "stderr", (const guint8 *) "a\0b", 3);
        control_exec_add_output(o, "other", (const guint8 *) "\xff", 1);
        ck_assert_str_eq(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                         "{\"stdout\":\"h\xc3\xa9\\n\",\"stderr_base64\":\"YQBi\",\"other_base64\":\"/w==\"}");
        json_object_put(o);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("control-exec");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_spec_from_config_with_env_merged);
        tcase_add_test(tc, test_spec_without_config_uses_fallbacks_and_given_cwd);
        tcase_add_test(tc, test_spec_env_name_match_is_exact);
        tcase_add_test(tc, test_output_text_or_base64);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
