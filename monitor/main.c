/* ctrmon: a container monitor, a drop-in for conmon. main() only parses the
 * options, runs the monitor once and turns the result into an exit status. */
#include "lifecycle.h"
#include "options.h"

#include <locale.h>
#include <stdio.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
        setlocale(LC_ALL, "");
        /* Forced, as conmon 2.2: the modes of every file we create are
         * documented under this umask. */
        umask(022);

        g_autoptr(GError) error = NULL;
        g_autoptr(CtrmonOptions) opts = NULL;
        int r = options_parse(argc, argv, &opts, &error);
        if (r < 0) {
                fprintf(stderr, "%s\n", error->message);
                return 1;
        }
        if (r > 0)
                return 0; /* --version */

        return lifecycle_run(opts);
}
