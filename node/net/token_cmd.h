/* `switchboard token`: prints a signed token for a peer, for operators, demos and tests. */
#ifndef SB_TOKEN_CMD_H
#define SB_TOKEN_CMD_H

/* Runs the command with its arguments (argv[0] is "token"). Returns the exit status. */
int sb_token_cmd(int argc, char **argv);

#endif
