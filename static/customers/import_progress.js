'use strict';
// An import's page while a worker runs its dry run or its import: the progress is read
// from the job's progress/ URL every second; when the status changes the page reloads
// to show the outcome. No library: a fetch and a few text nodes.
{
    const box = document.getElementById('import-progress');
    if (box) {
        const status = box.dataset.status;
        const show = (id, text) => {
            const element = document.getElementById(id);
            if (element) { element.textContent = text; }
        };
        const poll = async () => {
            try {
                const answer = await fetch(box.dataset.url, {
                    headers: {Accept: 'application/json'},
                    credentials: 'same-origin',
                });
                if (answer.ok) {
                    const progress = await answer.json();
                    if (progress.status !== status) {
                        window.location.reload();
                        return;
                    }
                    show('import-state', progress.state_text);
                    show('import-rows-done', progress.rows_text);
                    show('import-rate', progress.rate_text);
                    show('import-time-left', progress.time_left_text);
                    const bar = document.getElementById('import-bar');
                    if (bar && progress.percent !== null) { bar.value = progress.percent; }
                }
            } catch (error) {
                // The server is away for a moment: try again at the next tick.
            }
            window.setTimeout(poll, 1000);
        };
        window.setTimeout(poll, 1000);
    }
}
