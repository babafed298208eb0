-- CreateTable
CREATE TABLE "ShadowResult" (
    "predictionId" TEXT NOT NULL PRIMARY KEY,
    "modelName" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "shadowVersion" INTEGER NOT NULL,
    "predictedAt" DATETIME NOT NULL,
    "createdAt" DATETIME NOT NULL,
    "outputs" JSONB,
    "label" TEXT,
    "error" TEXT,
    "latencyMs" REAL,
    "primaryLatencyMs" REAL,
    "meanAbsoluteDifference" REAL,
    "labelsAgree" BOOLEAN,
    "apiKeyId" TEXT,
    CONSTRAINT "ShadowResult_predictionId_fkey" FOREIGN KEY ("predictionId") REFERENCES "Prediction" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE INDEX "ShadowResult_modelName_version_shadowVersion_predictedAt_idx" ON "ShadowResult"("modelName", "version", "shadowVersion", "predictedAt");
