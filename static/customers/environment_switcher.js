'use strict';
// The environment switcher at the top of every admin and browsable API page: choosing an
// environment submits its form (a static file, not an inline onchange: the pages'
// Content-Security-Policy runs no inline handlers). Without JavaScript, its button does.
{
    for (const select of document.querySelectorAll('.environment-switcher select')) {
        select.addEventListener('change', () => select.form.submit());
    }
}
