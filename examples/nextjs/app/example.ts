// How a page of the Next.js app uses the client (in a client component or an event handler:
// the token comes from Better-Auth with the browser's session cookie).
import { createTasksApi, etagOf, TasksApiError, type ListedTask } from "../lib/tasks-api";

const api = createTasksApi({ baseUrl: "http://127.0.0.1:8000" });

export async function example(): Promise<void> {
  const { task, etag } = await api.createTask({ title: "Buy milk", priority: "high" });
  const { task: done } = await api.toggleTaskCompletion(task.id, null, etag);
  console.log(done.completed, done.completed_at);

  for (const item of await api.listTasks({ status: "all", sort: "created_at" })) {
    show(item);
  }

  try {
    await api.patchTask(task.id, { title: "Buy oat milk" }, etagOf(task)); // stale: done moved on
  } catch (error) {
    if (error instanceof TasksApiError && error.problem?.code === "precondition_failed") {
      const current = await api.getTask(task.id); // reload, merge, retry with the fresh ETag
      await api.patchTask(task.id, { title: "Buy oat milk" }, current.etag);
    } else throw error;
  }
  await api.deleteTask(task.id);
}

// Delta sync (`include_deleted=true`) mixes tombstones into the list: `deleted` tells them apart.
// The cases are the boolean literals, so tsc rejects this if the tag were ever typed otherwise.
function show(item: ListedTask): void {
  switch (item.deleted) {
    case true: // a TaskTombstone: only id, deleted, updated_at
      console.log(`${item.id} was deleted at ${item.updated_at}`);
      break;
    case false: // a TaskResponse
      console.log(`${item.title} (${item.priority}), version ${item.version}`);
      break;
  }
}
