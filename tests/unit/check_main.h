/* Runs a Check suite and turns its result into the exit status. */
#ifndef VIGIL_CHECK_MAIN_H
#define VIGIL_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

static inline int vigil_run_suite(Suite *s)
{
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
