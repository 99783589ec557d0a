/* chat.c: placeholder (real implementation in progress by sampler). */
#include "engine/chat.h"

#include <stdlib.h>
#include <string.h>

hp_chat_format hp_chat_detect(const char *tmpl)
{
    (void)tmpl;
    return HP_CHAT_FALLBACK;
}

const char *hp_chat_format_name(hp_chat_format f)
{
    (void)f;
    return "fallback";
}

char *hp_chat_render(hp_chat_format f, const hp_chat_msg *msgs, int n,
                     bool add_generation_prompt, const char *bos,
                     const char *eos)
{
    (void)f;
    (void)bos;
    (void)eos;
    size_t len = 1 + (add_generation_prompt ? 10 : 0);
    for (int i = 0; i < n; i++)
        len += strlen(msgs[i].role ? msgs[i].role : "") + 3 +
               strlen(msgs[i].content ? msgs[i].content : "");
    char *s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        strcat(s, msgs[i].role ? msgs[i].role : "");
        strcat(s, ": ");
        strcat(s, msgs[i].content ? msgs[i].content : "");
        strcat(s, "\n");
    }
    if (add_generation_prompt)
        strcat(s, "assistant:");
    return s;
}
