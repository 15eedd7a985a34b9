/* The echo handler: every text message goes back to its sender (a test and fuzzing mode). */
#include "app/echo.h"

#include "net/conn.h"

static void on_text(void *app, sb_conn_t *c, const char *data, size_t len)
{
    (void)app;
    sb_conn_send_text(c, data, len);
}

sb_handler_t sb_echo_handler(void)
{
    sb_handler_t h = {.on_text = on_text};
    return h;
}
