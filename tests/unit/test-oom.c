/* Proves the cgroup parsing behind OOM detection: the v1 memory controller's
 * path (also in a combined hierarchy), the v2 "0::" path in hybrid layouts,
 * and memory.events counters. */
#include "oom.h"
#include "cgroup-util.h"
#include "log-journald.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char *hybrid =
        "12:pids:/user.slice/ctr\n"
        "11:memory:/machine/abc\n"
        "3:cpu,cpuacct:/machine/abc\n"
        "1:name=systemd:/machine/abc\n"
        "0::/machine/abc-unified\n";

START_TEST(test_v1_memory_path_is_found_among_controllers)
{
        g_autofree char *p = cgroup_path_from_proc(hybrid, "memory");
        ck_assert_str_eq(p, "/machine/abc");
}
END_TEST

START_TEST(test_v1_memory_in_combined_hierarchy)
{
        g_autofree char *p = cgroup_path_from_proc("5:blkio,memory:/x/y\n", "memory");
        ck_assert_str_eq(p, "/x/y");
}
END_TEST

START_TEST(test_v2_uses_only_the_zero_line)
{
        g_autofree char *p = cgroup_path_from_proc(hybrid, NULL);
        ck_assert_str_eq(p, "/machine/abc-unified");
}
END_TEST

START_TEST(test_no_memory_controller_gives_null)
{
        ck_assert_ptr_null(cgroup_path_from_proc("12:pids:/a\n", "memory"));
        ck_assert_ptr_null(cgroup_path_from_proc("12:pids:/a\n", NULL));
}
END_TEST

START_TEST(test_memory_events_counters)
{
        guint64 oom = 9, kill = 9;
        oom_parse_memory_events("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n", &oom, &kill);
        ck_assert_uint_eq(oom, 2);
        ck_assert_uint_eq(kill, 1);
        oom_parse_memory_events("low 0\n", &oom, &kill);
        ck_assert_uint_eq(oom, 0);
        ck_assert_uint_eq(kill, 0);
}
END_TEST

START_TEST(test_journald_priority_prefix_only_digits_0_to_7)
{
        const char *line = "<3>boom\n";
        size_t len = 8;
        ck_assert_int_eq(journald_parse_priority(&line, &len), 3);
        ck_assert_str_eq(line, "boom\n");
        ck_assert_uint_eq(len, 5);

        const char *cases[] = { "<8>x", "<>x", "<<0>>x", "3>x", "<a>x" };
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                const char *l = cases[i];
                size_t n = strlen(l);
                ck_assert_int_eq(journald_parse_priority(&l, &n), -1);
                ck_assert_str_eq(l, cases[i]);
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("oom");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_v1_memory_path_is_found_among_controllers);
        tcase_add_test(tc, test_v1_memory_in_combined_hierarchy);
        tcase_add_test(tc, test_v2_uses_only_the_zero_line);
        tcase_add_test(tc, test_no_memory_controller_gives_null);
        tcase_add_test(tc, test_memory_events_counters);
        tcase_add_test(tc, test_journald_priority_prefix_only_digits_0_to_7);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
