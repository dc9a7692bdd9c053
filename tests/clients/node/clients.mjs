// The Node clients against a running chatwell: node clients.mjs BASE_URL KEY BOT QUESTION
// Prints one JSON object: what each client got (the Python test asserts on it).
import { createOpenAI } from "@ai-sdk/openai";
import { streamText, generateText } from "ai";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [base, key, bot, question] = process.argv.slice(2);
const openai = createOpenAI({ baseURL: `${base}/v1`, apiKey: key });
const out = {};

async function streamed(model) {
  const result = streamText({ model, prompt: question, maxRetries: 0 });
  let text = "";
  for await (const piece of result.textStream) text += piece;
  return { text, usage: await result.usage, finishReason: await result.finishReason };
}

out.responses = await streamed(openai(bot));            // the default provider: the Responses API
out.chat = await streamed(openai.chat(bot));            // chat completions
out.generated = (await generateText({ model: openai(bot), prompt: question, maxRetries: 0 })).text;

const mcp = new Client({ name: "chatwell-tests", version: "1.0.0" });
await mcp.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
}));
out.tools = (await mcp.listTools()).tools.map((t) => t.name).sort();
const progress = [];
const asked = await mcp.callTool({ name: "ask", arguments: { bot, question } }, undefined,
  { onprogress: (p) => progress.push(p.progress) });
out.ask = asked.structuredContent;
out.progress = progress.length;
const searched = await mcp.callTool({ name: "search_knowledge", arguments: { bot, query: question } });
out.search = searched.structuredContent;
await mcp.close();
console.log(JSON.stringify(out));
