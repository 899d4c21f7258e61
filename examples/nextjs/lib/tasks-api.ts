// A typed client for tasks-api. Every type comes from lib/api-types.ts, which `npm run generate`
// writes from the committed contract (specs/001-tasks-api/contracts/openapi.json), so a change
// to the API that breaks this file fails `npm run check`.
import type { components, operations } from "./api-types";

type Schemas = components["schemas"];

export type Task = Schemas["TaskResponse"];
export type TaskTombstone = Schemas["TaskTombstone"];
/** One item of GET /api/tasks: a task (`deleted: false`), or with `include_deleted=true` a
 * tombstone (`deleted: true`); `deleted` narrows it. */
export type ListedTask =
  operations["listTasks"]["responses"][200]["content"]["application/json"][number];
export type Problem = Schemas["Problem"];
export type ListTasksQuery = NonNullable<operations["listTasks"]["parameters"]["query"]>;
export type TaskCreate = operations["createTask"]["requestBody"]["content"]["application/json"];
export type TaskPatch = operations["patchTask"]["requestBody"]["content"]["application/json"];
export type CompletionChange = NonNullable<
  NonNullable<operations["toggleTaskCompletion"]["requestBody"]>["content"]["application/json"]
>;
export type TaskId = operations["getTask"]["parameters"]["path"]["task_id"];

/** A task with the ETag of the response that carried it, for `If-Match` on the next write. */
export interface TaggedTask {
  task: Task;
  etag: string;
}

export interface ListPage {
  tasks: ListedTask[];
  /** The `Link: rel="next"` URL, or null on the last page. */
  next: string | null;
  /** Delta sync: send it as `updated_since` next time. */
  syncToken: string | null;
}

/** A non-2xx answer. `problem` is the service's problem+json body; null when something in
 * between (a proxy, a load balancer) answered with a body of its own. */
export class TasksApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
    /** On 412: the task's current ETag, to retry with after merging. */
    readonly etag: string | null,
  ) {
    super(problem ? `${problem.status} ${problem.code}: ${problem.detail}` : `HTTP ${status}`);
    this.name = "TasksApiError";
  }
}

/** The JWT for this service, from Better-Auth's jwt() plugin on the app's own origin. The
 * session cookie authenticates the call, hence `credentials: "include"`. */
export async function betterAuthToken(authBaseUrl = ""): Promise<string> {
  const response = await fetch(`${authBaseUrl}/api/auth/token`, { credentials: "include" });
  if (!response.ok) throw new Error(`not signed in (GET /api/auth/token: ${response.status})`);
  const { token } = (await response.json()) as { token: string };
  return token;
}

/** The ETag of a task the service sent without one (a list item): its version in quotes. */
export function etagOf(task: Pick<Task, "version">): string {
  return `"${task.version}"`;
}

export interface TasksApiOptions {
  /** Where tasks-api runs, e.g. process.env.NEXT_PUBLIC_TASKS_API_URL; no trailing slash. */
  baseUrl: string;
  /** Defaults to Better-Auth's /api/auth/token on the page's origin. */
  getToken?: () => Promise<string>;
}

export function createTasksApi({ baseUrl, getToken = () => betterAuthToken() }: TasksApiOptions) {
  const origin = new URL(baseUrl).origin;
  let cached: { token: string; refreshAt: number } | null = null;

  // Better-Auth's JWTs live 15 minutes; reuse one until a minute before it expires instead of
  // asking /api/auth/token before every call.
  async function token(): Promise<string> {
    if (cached && Date.now() < cached.refreshAt) return cached.token;
    const fresh = await getToken();
    cached = { token: fresh, refreshAt: expiresAt(fresh) - 60_000 };
    return fresh;
  }

  async function send(url: string, init: RequestInit = {}, retried = false): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("Authorization", `Bearer ${await token()}`);
    if (init.body !== undefined) headers.set("Content-Type", "application/json");
    const response = await fetch(url, { ...init, headers });
    // A 401 means nothing was written, so one retry with a new token is safe even for POST.
    if (response.status === 401 && !retried) {
      cached = null;
      return send(url, init, true);
    }
    if (!response.ok) throw await toError(response);
    return response;
  }

  async function tagged(response: Response): Promise<TaggedTask> {
    const task = (await response.json()) as Task;
    return { task, etag: response.headers.get("ETag") ?? etagOf(task) };
  }

  const taskUrl = (taskId: TaskId, suffix = "") =>
    `${baseUrl}/api/tasks/${encodeURIComponent(taskId)}${suffix}`;
  const preconditions = (ifMatch: string | undefined): HeadersInit =>
    ifMatch === undefined ? {} : { "If-Match": ifMatch };

  async function listPage(queryOrNext: ListTasksQuery | string = {}): Promise<ListPage> {
    const url =
      typeof queryOrNext === "string" ? queryOrNext : `${baseUrl}/api/tasks${toSearch(queryOrNext)}`;
    // The token goes only to the configured service, whatever a Link header says.
    if (new URL(url).origin !== origin) throw new Error(`refusing to follow ${url}: not ${origin}`);
    const response = await send(url);
    return {
      tasks: (await response.json()) as ListedTask[],
      next: nextLink(response.headers.get("Link"), url),
      syncToken: response.headers.get("Sync-Token"),
    };
  }

  return {
    listPage,

    /** Every matching task, following `Link: rel="next"` page by page. */
    async listTasks(query: ListTasksQuery = {}): Promise<ListedTask[]> {
      const tasks: ListedTask[] = [];
      let page = await listPage(query);
      tasks.push(...page.tasks);
      while (page.next !== null) {
        page = await listPage(page.next);
        tasks.push(...page.tasks);
      }
      return tasks;
    },

    async getTask(taskId: TaskId): Promise<TaggedTask> {
      return tagged(await send(taskUrl(taskId)));
    },

    /** With `idempotencyKey` (one per task the user means to create), retries create it once. */
    async createTask(body: TaskCreate, idempotencyKey?: string): Promise<TaggedTask> {
      const headers: HeadersInit = idempotencyKey ? { "Idempotency-Key": idempotencyKey } : {};
      return tagged(
        await send(`${baseUrl}/api/tasks`, { method: "POST", headers, body: JSON.stringify(body) }),
      );
    },

    /** Flips completion, or sets it with `{ completed }`, in one atomic UPDATE. */
    async toggleTaskCompletion(
      taskId: TaskId,
      change: CompletionChange | null = null,
      ifMatch?: string,
    ): Promise<TaggedTask> {
      return tagged(
        await send(taskUrl(taskId, "/complete"), {
          method: "PATCH",
          headers: preconditions(ifMatch),
          ...(change === null ? {} : { body: JSON.stringify(change) }),
        }),
      );
    },

    /** Changes only the fields sent. With `ifMatch`, a task changed elsewhere since that ETag
     * is left alone and this throws a TasksApiError with status 412 and the current `etag`. */
    async patchTask(taskId: TaskId, changes: TaskPatch, ifMatch?: string): Promise<TaggedTask> {
      return tagged(
        await send(taskUrl(taskId), {
          method: "PATCH",
          headers: preconditions(ifMatch),
          body: JSON.stringify(changes),
        }),
      );
    },

    async deleteTask(taskId: TaskId, ifMatch?: string): Promise<void> {
      await send(taskUrl(taskId), { method: "DELETE", headers: preconditions(ifMatch) });
    },
  };
}

export type TasksApi = ReturnType<typeof createTasksApi>;

async function toError(response: Response): Promise<TasksApiError> {
  const isProblem = response.headers.get("Content-Type")?.startsWith("application/problem+json");
  const problem = isProblem ? ((await response.json()) as Problem) : null;
  return new TasksApiError(response.status, problem, response.headers.get("ETag"));
}

function toSearch(query: ListTasksQuery): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** The target of `rel="next"` in a Link header (RFC 8288), resolved against the request URL. */
function nextLink(header: string | null, requestUrl: string): string | null {
  for (const link of header?.split(",") ?? []) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(link);
    const isNext = /(?:^|;)\s*rel\s*=\s*"?(?:[^";]*\s)?next(?:\s[^";]*)?"?\s*(?:;|$)/i;
    if (match?.[1] !== undefined && isNext.test(`;${match[2]}`)) {
      return new URL(match[1], requestUrl).toString();
    }
  }
  return null;
}

/** The JWT's `exp` in milliseconds; 0 (refresh next time) if it can't be read. */
function expiresAt(jwt: string): number {
  try {
    const payload = jwt.split(".")[1] ?? "";
    const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as {
      exp?: number;
    };
    return typeof claims.exp === "number" ? claims.exp * 1000 : 0;
  } catch {
    return 0;
  }
}
