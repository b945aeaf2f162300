/* oauth.c - POST /oauth2/token (refresh_token with single-use rotation,
 * client_credentials) and access-token validation. */
#include "bs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tok {
	char value[65];
	time_t expires;		/* 0: refresh token (no expiry) */
	struct tok *next;
};

static struct tok *access_toks, *refresh_toks;
static pthread_mutex_t oauth_lock = PTHREAD_MUTEX_INITIALIZER;

static struct tok *tok_push(struct tok **list, const char *v, time_t exp)
{
	struct tok *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	snprintf(t->value, sizeof(t->value), "%s", v);
	t->expires = exp;
	t->next = *list;
	*list = t;
	return t;
}

void oauth_add_refresh(const char *rt)
{
	pthread_mutex_lock(&oauth_lock);
	tok_push(&refresh_toks, rt, 0);
	pthread_mutex_unlock(&oauth_lock);
}

int oauth_token_ok(const char *token)
{
	struct tok *t;
	time_t now = time(NULL);
	int ok = 0;

	if (!strcmp(token, bs_conf.token))
		return 1;
	pthread_mutex_lock(&oauth_lock);
	for (t = access_toks; t; t = t->next)
		if (!strcmp(t->value, token) && t->expires > now)
			ok = 1;
	pthread_mutex_unlock(&oauth_lock);
	return ok;
}

static void random_token(char *buf)
{
	static const char al[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	int i;

	for (i = 0; i < 32; i++)
		buf[i] = al[random() % 62];
	buf[32] = 0;
}

/* Removes refresh token rt; 1 if it was valid. */
static int refresh_take(const char *rt)
{
	struct tok **pp, *t;

	for (pp = &refresh_toks; (t = *pp); pp = &t->next) {
		if (!strcmp(t->value, rt)) {
			*pp = t->next;
			free(t);
			return 1;
		}
	}
	return 0;
}

static void oauth_error(struct req *r, int status, const char *err,
			const char *desc)
{
	cJSON *o = cJSON_CreateObject();

	if (o) {
		cJSON_AddStringToObject(o, "error", err);
		cJSON_AddStringToObject(o, "error_description", desc);
	}
	http_json(r, status, o);
}

void oauth_handle(struct req *r)
{
	char grant[64], cid[256], csec[256], rt[256], at[33], nrt[33];
	cJSON *o;
	int with_refresh = 0;

	if (strcmp(r->method, "POST")) {
		http_error(r, 405, "method_not_allowed", "Method Not Allowed",
			   NULL);
		return;
	}
	if (!r->body || parse_form_get(r->body, "grant_type", grant,
				       sizeof(grant))) {
		oauth_error(r, 400, "invalid_request", "Invalid grant_type parameter or parameter missing");
		return;
	}
	if (parse_form_get(r->body, "client_id", cid, sizeof(cid)) ||
	    parse_form_get(r->body, "client_secret", csec, sizeof(csec)) ||
	    !bs_conf.client_id[0] || strcmp(cid, bs_conf.client_id) ||
	    strcmp(csec, bs_conf.client_secret)) {
		oauth_error(r, 400, "invalid_client", "The client credentials are invalid");
		return;
	}
	pthread_mutex_lock(&oauth_lock);
	if (!strcmp(grant, "refresh_token")) {
		if (parse_form_get(r->body, "refresh_token", rt, sizeof(rt)) ||
		    !refresh_take(rt)) {
			pthread_mutex_unlock(&oauth_lock);
			oauth_error(r, 400, "invalid_grant", "Invalid refresh token");
			return;
		}
		with_refresh = 1;
	} else if (!strcmp(grant, "client_credentials")) {
		if (parse_form_get(r->body, "box_subject_type", rt, sizeof(rt)) ||
		    (strcmp(rt, "enterprise") && strcmp(rt, "user"))) {
			pthread_mutex_unlock(&oauth_lock);
			oauth_error(r, 400, "invalid_request", "box_subject_type must be enterprise or user");
			return;
		}
	} else {
		pthread_mutex_unlock(&oauth_lock);
		oauth_error(r, 400, "unsupported_grant_type", "Grant type is not supported");
		return;
	}
	random_token(at);
	random_token(nrt);
	tok_push(&access_toks, at, time(NULL) + (time_t)bs_conf.token_ttl);
	if (with_refresh)
		tok_push(&refresh_toks, nrt, 0);
	pthread_mutex_unlock(&oauth_lock);
	o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "access_token", at);
		cJSON_AddNumberToObject(o, "expires_in", (double)bs_conf.token_ttl);
		cJSON_AddStringToObject(o, "token_type", "bearer");
		if (with_refresh)
			cJSON_AddStringToObject(o, "refresh_token", nrt);
		cJSON_AddItemToObject(o, "restricted_to", cJSON_CreateArray());
	}
	http_json(r, 200, o);
}
