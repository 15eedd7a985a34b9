/* The echo handler: every text message goes back to its sender (a test and fuzzing mode). */
#ifndef SB_ECHO_H
#define SB_ECHO_H

#include "net/conn.h"

/* Returns the handler; it keeps no state. */
sb_handler_t sb_echo_handler(void);

#endif
