/*
 * Validate every image manifest `sim triton` stores (DIR/imgapi/manifests/
 * *.json) with npm imgmanifest's validateDcManifest, as a DC-mode IMGAPI
 * does. Prints {"<file>": null | [errors]} as JSON.
 */
'use strict';
var fs = require('fs');
var path = require('path');
var imgmanifest = require('imgmanifest');

var dir = path.join(process.argv[2], 'imgapi', 'manifests');
var res = {};
fs.readdirSync(dir).filter(function (f) { return /\.json$/.test(f); })
    .sort().forEach(function (f) {
        var m = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
        res[f] = imgmanifest.validateDcManifest(m);
    });
console.log(JSON.stringify(res));
