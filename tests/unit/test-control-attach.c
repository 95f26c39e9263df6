/* Proves the detach keys of the control API's attach: Docker's spellings
 * parse to the right bytes, and the matcher finds the sequence across any
 * cut of the stdin stream while passing every other byte on unchanged, in
 * order, including a false start. */
#include "control-attach.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_parse_default_and_specials)
{
        GByteArray *k = control_attach_parse_detach_keys("ctrl-p,ctrl-q");
        ck_assert_uint_eq(k->len, 2);
        ck_assert_uint_eq(k->data[0], 0x10);
        ck_assert_uint_eq(k->data[1], 0x11);
        g_byte_array_unref(k);
        k = control_attach_parse_detach_keys("a,ctrl-@,ctrl-[,CTRL-\\,ctrl-],ctrl-^,ctrl-_,ctrl-A");
        const guint8 want[] = { 'a', 0, 27, 28, 29, 30, 31, 1 };
        ck_assert_uint_eq(k->len, sizeof want);
        ck_assert(memcmp(k->data, want, sizeof want) == 0);
        g_byte_array_unref(k);
        k = control_attach_parse_detach_keys("");
        ck_assert_uint_eq(k->len, 0);
        g_byte_array_unref(k);
}
END_TEST

START_TEST(test_parse_rejects_malformed)
{
        const char *bad[] = { "ctrl-", "ctrl-1", "ab", "a,,b", "ctrl-pp", "," };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
                ck_assert_ptr_null(control_attach_parse_detach_keys(bad[i]));
}
END_TEST

static bool scan_all(const char *keys, const char *input, size_t cut, GByteArray *out)
{
        ControlDetachMatcher m = { (const guint8 *) keys, strlen(keys), 0 };
        size_t len = strlen(input);
        for (size_t i = 0; i < len; i += cut)
                if (control_attach_detach_scan(&m, (const guint8 *) input + i, MIN(cut, len - i), out))
                        return true;
        return false;
}

START_TEST(test_scan_finds_keys_across_any_cut)
{
        for (size_t cut = 1; cut <= 8; cut++) {
                GByteArray *out = g_byte_array_new();
                ck_assert(scan_all("\x10\x11", "abc\x10\x11zzz", cut, out));
                ck_assert_uint_eq(out->len, 3);
                ck_assert(memcmp(out->data, "abc", 3) == 0);
                g_byte_array_unref(out);
        }
}
END_TEST

START_TEST(test_scan_false_start_is_passed_on)
{
        GByteArray *out = g_byte_array_new();
        /* ^P x: not the sequence; ^P ^P ^Q: the second ^P begins it. */
        ck_assert(scan_all("\x10\x11", "\x10x\x10\x10\x11", 1, out));
        ck_assert_uint_eq(out->len, 3);
        ck_assert(memcmp(out->data, "\x10x\x10", 3) == 0);
        g_byte_array_unref(out);
}
END_TEST

/* Keys with repeated bytes: after a false start the held bytes may still
 * end in a beginning of the keys ("aab" in "aaab", "abab" in "ababab"). */
START_TEST(test_scan_keys_with_repeated_bytes_detach_at_the_first_occurrence)
{
        static const struct {
                const char *keys, *input, *before;
        } cases[] = {
                { "aab", "aaab-", "a" },
                { "aab", "xaaaaab", "xaaa" },
                { "abab", "ababab", "" },
                { "abab", "abaabab", "aba" },
                { "aabaa", "aabaxaabaabaa", "aabax" },
                { "abac", "ababac", "ab" },
                { "\x10\x10\x11", "\x10\x10\x10\x11", "\x10" },
        };
        for (size_t c = 0; c < G_N_ELEMENTS(cases); c++)
                for (size_t cut = 1; cut <= 4; cut++) {
                        GByteArray *out = g_byte_array_new();
                        ck_assert_msg(scan_all(cases[c].keys, cases[c].input, cut, out), "case %zu cut %zu", c,
                                      cut);
                        ck_assert_uint_eq(out->len, strlen(cases[c].before));
                        ck_assert(out->len == 0 || memcmp(out->data, cases[c].before, out->len) == 0);
                        g_byte_array_unref(out);
                }
        /* No occurrence: every byte passes, in order, none held at the end
         * but a beginning of the keys. */
        GByteArray *out = g_byte_array_new();
        ck_assert(!scan_all("aab", "aaaxaa", 1, out));
        ck_assert_uint_eq(out->len, 4);
        ck_assert(memcmp(out->data, "aaax", 4) == 0);
        g_byte_array_unref(out);
}
END_TEST

START_TEST(test_scan_without_keys_or_match_passes_everything)
{
        GByteArray *out = g_byte_array_new();
        ck_assert(!scan_all("", "a\x10\x11" "b", 2, out));
        ck_assert_uint_eq(out->len, 4);
        g_byte_array_set_size(out, 0);
        ck_assert(!scan_all("\x10\x11", "plain text\n", 3, out));
        ck_assert_uint_eq(out->len, 11);
        g_byte_array_unref(out);
}
END_TEST

START_TEST(test_scan_holds_a_trailing_prefix)
{
        GByteArray *out = g_byte_array_new();
        ControlDetachMatcher m = { (const guint8 *) "\x10\x11", 2, 0 };
        ck_assert(!control_attach_detach_scan(&m, (const guint8 *) "ab\x10", 3, out));
        ck_assert_uint_eq(out->len, 2); /* ^P held back */
        ck_assert(!control_attach_detach_scan(&m, (const guint8 *) "c", 1, out));
        ck_assert_uint_eq(out->len, 4);
        ck_assert(memcmp(out->data, "ab\x10" "c", 4) == 0);
        g_byte_array_unref(out);
}
END_TEST

START_TEST(test_scan_single_key)
{
        GByteArray *out = g_byte_array_new();
        ck_assert(scan_all("\x18", "xy\x18", 1, out));
        ck_assert_uint_eq(out->len, 2);
        g_byte_array_unref(out);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("control-attach");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_parse_default_and_specials);
        tcase_add_test(tc, test_parse_rejects_malformed);
        tcase_add_test(tc, test_scan_finds_keys_across_any_cut);
        tcase_add_test(tc, test_scan_false_start_is_passed_on);
        tcase_add_test(tc, test_scan_keys_with_repeated_bytes_detach_at_the_first_occurrence);
        tcase_add_test(tc, test_scan_without_keys_or_match_passes_everything);
        tcase_add_test(tc, test_scan_holds_a_trailing_prefix);
        tcase_add_test(tc, test_scan_single_key);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
