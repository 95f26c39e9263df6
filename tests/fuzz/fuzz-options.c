/* libFuzzer target for the command line (options.h): the input, split on
 * NUL bytes, is argv after a fixed "ctrmon". options_parse() must return
 * options, 1 (--version) or an error with a message, never crash or leak.
 *
 * Side effects kept in a box:
 * - A k8s-file log path is CREATED by options_parse() (open O_CREAT, as
 *   conmon). LLVMFuzzerInitialize() chdirs into a private temp directory
 *   and words containing '/' (any absolute path, also "--log-path=/x" and
 *   "-l/x") or ".." are refused, so every path is relative to it; files
 *   left there are removed after each run.
 * - --help and friends make GOption print and exit(0): such words are
 *   dropped. --version only prints.
 * - GLib's print handlers are silenced (warnings, --version); libFuzzer's
 *   own reports still go to stderr. */
#include "options.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_MAX_WORDS 64
/* An executable in the private directory, so --runtime can pass access(). */
#define FUZZ_RUNTIME "rt"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[] = "/tmp/ctrmon-fuzz-options.XXXXXX";

static void fuzz_print_nothing(const gchar *string)
{
        (void) string;
}

static void fuzz_remove_dir(void)
{
        /* Called at exit: the directory holds only regular files. */
        DIR *d = opendir(fuzz_dir);
        if (d) {
                struct dirent *e;
                while ((e = readdir(d)))
                        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                                unlinkat(dirfd(d), e->d_name, 0);
                closedir(d);
        }
        (void) chdir("/");
        rmdir(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void) argc;
        (void) argv;
        if (!mkdtemp(fuzz_dir) || chdir(fuzz_dir) < 0)
                abort();
        int fd = open(FUZZ_RUNTIME, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
        if (fd < 0)
                abort();
        close(fd);
        atexit(fuzz_remove_dir);
        g_set_print_handler(fuzz_print_nothing);
        g_set_printerr_handler(fuzz_print_nothing);
        return 0;
}

/* Remove whatever the run created (k8s-file logs), keeping the runtime. */
static void fuzz_clean_dir(void)
{
        DIR *d = opendir(".");
        if (!d)
                abort();
        struct dirent *e;
        while ((e = readdir(d))) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
                    strcmp(e->d_name, FUZZ_RUNTIME) == 0)
                        continue;
                unlinkat(dirfd(d), e->d_name, 0);
        }
        closedir(d);
}

static bool fuzz_word_allowed(const char *w)
{
        if (strchr(w, '/') || strstr(w, ".."))
                return false;
        if (strcmp(w, "-h") == 0 || strcmp(w, "-?") == 0 || strncmp(w, "--help", 6) == 0)
                return false;
        /* Short-option clusters: "-th" is -t -h. GOption's help flags are
         * -h and -?; drop any cluster holding one. */
        if (w[0] == '-' && w[1] != '-' && (strchr(w, 'h') || strchr(w, '?')))
                return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *buf = malloc(size + 1);
        if (!buf)
                abort();
        memcpy(buf, data, size);
        buf[size] = '\0';

        char *argv[FUZZ_MAX_WORDS + 2];
        int argc = 0;
        argv[argc++] = "ctrmon";
        for (char *p = buf; p < buf + size && argc <= FUZZ_MAX_WORDS; p += strlen(p) + 1) {
                if (!fuzz_word_allowed(p)) {
                        free(buf);
                        return 0;
                }
                argv[argc++] = p;
        }
        argv[argc] = NULL;

        CtrmonOptions *o = NULL;
        GError *error = NULL;
        int r = options_parse(argc, argv, &o, &error);
        if (r == 0) {
                if (!o || error || !o->cid || !o->runtime_path)
                        abort();
                if (o->log.k8s_file != (o->log.k8s_fd >= 0))
                        abort();
        } else if (r == 1) {
                if (o || error)
                        abort();
        } else {
                if (r > 0 || o || !error || !error->message)
                        abort();
        }
        options_free(o);
        if (error)
                g_error_free(error);
        fuzz_clean_dir();
        free(buf);
        return 0;
}
