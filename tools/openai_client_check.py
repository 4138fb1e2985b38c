#!/usr/bin/env python3
"""The official openai Python client against an OpenAI-compatible server (`llama-swift serve`).

Each check prints `ok NAME: detail` or `FAIL NAME: reason`; the last line is
`openai checks: N ok, M failed` and the exit status is 1 when any failed. Greedy decoding
(temperature 0) makes the checks deterministic for one model.

    python3 tools/openai_client_check.py --base-url http://127.0.0.1:PORT/v1 [--api-key KEY] [--model ID]
"""
import argparse
import json
import math
import sys
import traceback

import jsonschema
import openai

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluates an arithmetic expression such as 12 * 7.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", default="none")
    parser.add_argument("--model")
    args = parser.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=120)
    results = []

    def check(name):
        def run(body):
            try:
                detail = body()
                results.append(True)
                print(f"ok {name}: {detail}", flush=True)
            except Exception as e:  # noqa: BLE001 - every failure is reported, then counted
                results.append(False)
                print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
                traceback.print_exc(file=sys.stderr)
        return run

    state = {}

    @check("models")
    def _():
        models = client.models.list().data
        assert models, "no models listed"
        ids = [m.id for m in models]
        model = args.model or ids[0]
        assert model in ids, f"{model} not in {ids}"
        state["model"] = model
        return f"{len(ids)} model(s): {', '.join(ids)}"

    model = state.get("model", args.model)
    question = [{"role": "user", "content": "Name three colours."}]

    @check("chat")
    def _():
        r = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=24)
        choice = r.choices[0]
        assert r.object == "chat.completion", r.object
        assert choice.message.role == "assistant"
        assert choice.message.content, "empty content"
        assert choice.finish_reason in ("stop", "length"), choice.finish_reason
        u = r.usage
        assert u.prompt_tokens > 0 and 0 < u.completion_tokens <= 24, u
        assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u
        state["chat"] = (choice.message.content, u.completion_tokens, choice.finish_reason)
        return f"{u.prompt_tokens}+{u.completion_tokens} tokens: {choice.message.content!r}"

    @check("chat streaming (same greedy text, usage chunk)")
    def _():
        stream = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=24,
                                                stream=True, stream_options={"include_usage": True})
        text, finish, usage, chunks = "", None, None, 0
        for chunk in stream:
            chunks += 1
            if chunk.usage is not None:
                usage = chunk.usage
            for c in chunk.choices:
                if c.delta.content:
                    text += c.delta.content
                if c.finish_reason:
                    finish = c.finish_reason
        expected, tokens, expected_finish = state["chat"]
        assert text == expected, f"streamed {text!r} != {expected!r}"
        assert finish == expected_finish, finish
        assert usage is not None and usage.completion_tokens == tokens, usage
        return f"{chunks} chunks, usage {usage.prompt_tokens}+{usage.completion_tokens}"

    @check("completions")
    def _():
        r = client.completions.create(model=model, prompt="The capital of France is", temperature=0, max_tokens=8)
        assert r.object == "text_completion"
        assert r.choices[0].text, "empty text"
        assert r.usage.completion_tokens <= 8 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        return repr(r.choices[0].text)

    @check("logprobs: chat (top_logprobs) and completions, typed by the client")
    def _():
        r = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=8,
                                           logprobs=True, top_logprobs=3)
        content = r.choices[0].logprobs.content
        assert content, "no logprobs content"
        for entry in content:
            assert entry.logprob <= 0 and len(entry.top_logprobs) == 3, entry
            assert entry.top_logprobs[0].logprob == entry.logprob, "greedy token is not the most probable"
            assert [t.logprob for t in entry.top_logprobs] == sorted((t.logprob for t in entry.top_logprobs), reverse=True)
        spelled = bytes(b for entry in content for b in entry.bytes).decode("utf-8", "replace")
        assert spelled == r.choices[0].message.content, f"{spelled!r} != {r.choices[0].message.content!r}"
        c = client.completions.create(model=model, prompt="The capital of France is", temperature=0, max_tokens=4, logprobs=2)
        lp = c.choices[0].logprobs
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 4, lp
        assert "".join(lp.tokens) == c.choices[0].text, (lp.tokens, c.choices[0].text)
        return f"{len(content)} chat tokens, first {content[0].token!r} {content[0].logprob:.4f}"

    @check("embeddings (the client's default base64 and float)")
    def _():
        texts = ["The sea is blue.", "Rust is a programming language."]
        r = client.embeddings.create(model=model, input=texts)
        f = client.embeddings.create(model=model, input=texts, encoding_format="float")
        assert len(r.data) == 2 and len(f.data) == 2
        for a, b in zip(r.data, f.data):
            assert len(a.embedding) == len(b.embedding) > 0
            assert max(abs(x - y) for x, y in zip(a.embedding, b.embedding)) < 1e-6, "base64 and float differ"
            norm = math.sqrt(sum(x * x for x in b.embedding))
            assert abs(norm - 1) < 1e-3, f"norm {norm}"
        assert r.usage.prompt_tokens > 0
        return f"2 vectors of {len(f.data[0].embedding)}, normalized"

    @check("tools: a required call, its arguments valid, then the round trip")
    def _():
        messages = [{"role": "user", "content": "What is 12 times 7? Use the calculator."}]
        r = client.chat.completions.create(model=model, messages=messages, tools=[CALCULATOR], tool_choice="required",
                                           parallel_tool_calls=False, temperature=0, max_tokens=64)
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls", choice.finish_reason
        calls = choice.message.tool_calls
        assert calls and len(calls) == 1, calls
        call = calls[0]
        assert call.type == "function" and call.function.name == "calculator" and call.id
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, CALCULATOR["function"]["parameters"])
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": "calculator", "arguments": call.function.arguments}}]})
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "84"})
        final = client.chat.completions.create(model=model, messages=messages, tools=[CALCULATOR], tool_choice="none",
                                               temperature=0, max_tokens=32)
        answer = final.choices[0]
        assert answer.message.content, "no final answer"
        assert not answer.message.tool_calls
        assert final.usage.prompt_tokens > r.usage.prompt_tokens - 200
        return f"call {call.function.arguments}, answer {answer.message.content!r}"

    @check("tools streaming: the call arrives in deltas")
    def _():
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Compute 3 + 4 with the calculator."}],
            tools=[CALCULATOR], tool_choice={"type": "function", "function": {"name": "calculator"}},
            parallel_tool_calls=False, temperature=0, max_tokens=64, stream=True)
        name, arguments, finish, ids = None, "", None, set()
        for chunk in stream:
            for c in chunk.choices:
                for d in c.delta.tool_calls or []:
                    if d.id:
                        ids.add(d.id)
                    if d.function and d.function.name:
                        name = d.function.name
                    if d.function and d.function.arguments:
                        arguments += d.function.arguments
                if c.finish_reason:
                    finish = c.finish_reason
        assert name == "calculator" and len(ids) == 1, (name, ids)
        jsonschema.validate(json.loads(arguments), CALCULATOR["function"]["parameters"])
        assert finish == "tool_calls", finish
        return arguments

    @check("response_format json_schema (validated with jsonschema)")
    def _():
        r = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Describe a person as JSON."}], temperature=0,
            max_tokens=96, response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}})
        value = json.loads(r.choices[0].message.content)
        jsonschema.validate(value, PERSON)
        return json.dumps(value)

    @check("errors: OpenAI's shape, the field named")
    def _():
        try:
            client.chat.completions.create(model=model, messages=question, n=2)
        except openai.BadRequestError as e:
            assert e.status_code == 400
            assert e.body["param"] == "n" and e.body["code"], e.body
        else:
            raise AssertionError("n=2 was accepted")
        try:
            client.chat.completions.create(model="no-such-model", messages=question)
        except openai.NotFoundError as e:
            assert e.body["code"] == "model_not_found", e.body
        else:
            raise AssertionError("an unknown model was accepted")
        return "400 param n, 404 model_not_found"

    ok = sum(results)
    print(f"openai checks: {ok} ok, {len(results) - ok} failed", flush=True)
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
