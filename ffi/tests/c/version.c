/* mempools.h: the version string matches the version macro. */
#include <stdio.h>
#include <string.h>

#include "mempools.h"

int main(void)
{
    const char *version = mempools_version();
    if (version == NULL || strcmp(version, MEMPOOLS_VERSION) != 0) {
        fprintf(stderr, "mempools_version() = %s, MEMPOOLS_VERSION = %s\n", version ? version : "(null)",
                MEMPOOLS_VERSION);
        return 1;
    }
    printf("1 passed, 0 failed\n");
    return 0;
}
